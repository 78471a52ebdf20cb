"""Structured logs (JSON lines on stderr). Secrets and personal data never reach them: flows
log identifiers only, and a last processor masks any field whose name suggests otherwise."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SENSITIVE = ("password", "secret", "token", "otp", "email", "phone", "name", "address",
             "street", "code", "key", "authorization", "cookie")
SAFE = frozenset({"event", "level", "timestamp", "logger", "flow", "request_id", "error_type",
                  "path", "kind", "item", "outcome", "actor", "events", "listen"})


def mask_sensitive(_logger: Any, _method: str,
                   event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key not in SAFE and any(word in key.lower() for word in SENSITIVE):
            event[key] = "[masked]"
    return event


class _StderrLogger:
    """Writes each line to the standard error of the moment, not the stream that was current
    when logging was set up (a stream swapped out and closed since would make logging fail)."""

    def msg(self, message: str) -> None:
        stream = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def configure(level: str = "info") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask_sensitive,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        # Not cached: a logger bound once would keep this configuration for good, and miss a
        # later one (a second `configure`, or structlog's capture in tests).
        cache_logger_on_first_use=False,
    )
