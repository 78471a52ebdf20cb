"""Structured logs: JSON lines on the standard error of the moment, personal data masked."""

from __future__ import annotations

import io
import json
import sys

import pytest
import structlog

from regshield import logs


def test_logs_follow_the_current_standard_error_even_after_it_was_replaced(
        monkeypatch: pytest.MonkeyPatch) -> None:
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.configure("info")
    structlog.get_logger("test").info("before", zone="example.")
    first.close()  # a test runner's captured stream, or a closed terminal
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    structlog.get_logger("test").info("after", email="jane@example.net")

    line = json.loads(second.getvalue())
    assert line["event"] == "after" and line["email"] == "[masked]"
