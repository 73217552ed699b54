"""Logging for the processes that do not set it up themselves, and LOG_FORMAT=json for all.

The Celery worker configures its own logging (and hijacks the root logger); gunicorn only
configures its `gunicorn.*` loggers. Without this, the web process drops its INFO lifecycle
lines (admitted, conflict, cancelled, enqueue_failed): Python's last-resort handler prints
WARNING and above only.

With LOG_FORMAT=json every line is one JSON object (python-json-logger): `time`, `level`,
`logger`, `message`, plus whatever the record carries — a lifecycle line (worker/core/lifecycle.py)
carries `event`, `run_id`, `workflow_id` and the event's fields; gunicorn's access line carries
`remote_addr`, `method`, `path`, `query`, `status`, `bytes`, `duration_ms`, `user_agent`.
The web gets it from create_app() and gunicorn.conf.py (`gunicorn_logconfig`), the worker from
Celery's after_setup_logger signals (worker/runner/worker_logs.py).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: gunicorn's access-log atoms → our field names
ACCESS_FIELDS = {"h": "remote_addr", "m": "method", "U": "path", "q": "query", "s": "status",
                 "B": "bytes", "M": "duration_ms", "a": "user_agent"}


class JsonFormatter(_JsonFormatter):
    """One JSON object per record: time (ISO-8601 UTC), level, logger, message, and the
    record's extra fields; a gunicorn access record also gets its atoms as named fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__("%(levelname)s %(name)s %(message)s", *args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        if record.name == "gunicorn.access" and isinstance(record.args, dict):
            atoms = record.args
            for atom, name in ACCESS_FIELDS.items():
                value = atoms.get(atom)
                if value not in (None, "-", ""):
                    log_data[name] = int(value) if atom in ("s", "B", "M") and str(
                        value).isdigit() else value


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT)


def configure_logging(level: int = logging.INFO, log_format: str = "text") -> None:
    """Give the root logger a stderr handler at `level`, unless something (a test runner, an
    embedding application, gunicorn's logconfig_dict) already configured it."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(level)


def gunicorn_logconfig(log_format: str) -> dict[str, Any] | None:
    """gunicorn's `logconfig_dict` for LOG_FORMAT: None for text (gunicorn's own lines); for
    json, its error and access logs and the root logger (the app's lines) as JSON lines."""
    if log_format != "json":
        return None

    def stream(name: str) -> dict[str, Any]:
        return {"class": "logging.StreamHandler", "formatter": "json",
                "stream": f"ext://sys.{name}"}

    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False,
                               "qualname": "gunicorn.error"},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False,
                                "qualname": "gunicorn.access"},
        },
        "handlers": {"console": stream("stderr"), "access": stream("stdout")},
        "formatters": {"json": {"()": "worker.core.logs.JsonFormatter"}},
    }
