"""Everything about a test run's lifecycle; importable without Flask.

`celery -A worker worker` finds the Celery app through `worker.celery`, built from the
environment on first access (never as a side effect of importing this package).
"""

from __future__ import annotations

from typing import Any

_app: Any = None


def __getattr__(name: str) -> Any:
    if name == "celery":
        global _app
        if _app is None:
            from .runner.app import create_worker_app

            _app = create_worker_app()
        return _app
    raise AttributeError(name)
