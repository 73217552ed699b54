"""Logging for the processes that do not set it up themselves.

The Celery worker configures its own logging (and hijacks the root logger); gunicorn only
configures its `gunicorn.*` loggers. Without this, the web process drops its INFO lifecycle
lines (admitted, conflict, cancelled, enqueue_failed): Python's last-resort handler prints
WARNING and above only.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: int = logging.INFO) -> None:
    """Give the root logger a stderr handler at `level`, unless something (a test runner, an
    embedding application) already configured it."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
