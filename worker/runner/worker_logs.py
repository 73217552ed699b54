"""LOG_FORMAT for the Celery worker: its handlers (main process and pool children) get the JSON
formatter once Celery has set them up; its start-up banner and Python warnings follow suit."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    celeryd_after_setup,
    celeryd_init,
)

from ..core.logs import JsonFormatter

_worker_format = "text"


def _json_handlers(logger: Any = None, **_: Any) -> None:
    if _worker_format == "json" and logger is not None:
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())


def _json_warnings(**_: Any) -> None:
    """Celery warns (SecurityWarning when run as root) before it sets up logging: in JSON
    mode, Python warnings become JSON lines of the `py.warnings` logger from the start."""
    if _worker_format != "json":
        return
    logging.captureWarnings(True)
    warnings_logger = logging.getLogger("py.warnings")
    if not warnings_logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        warnings_logger.addHandler(handler)
        warnings_logger.propagate = False


def _quiet_banner(sender: Any = None, instance: Any = None, **_: Any) -> None:
    """The worker's start-up banner is plain text on stdout: leave it out of a JSON stream."""
    if _worker_format == "json" and instance is not None:
        instance.quiet = True


def connect_worker(log_format: str) -> None:
    """LOG_FORMAT for the Celery worker: its handlers (main process and pool children) get the
    JSON formatter once Celery has set them up."""
    global _worker_format
    _worker_format = log_format
    after_setup_logger.connect(_json_handlers, weak=False)
    after_setup_task_logger.connect(_json_handlers, weak=False)
    celeryd_after_setup.connect(_quiet_banner, weak=False)
    celeryd_init.connect(_json_warnings, weak=False)
