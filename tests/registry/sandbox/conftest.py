"""The in-process sandbox registry fixture, shared by every test of this folder."""

from registry.sandbox.test_server import sandbox  # noqa: F401
