"""The baselines as WSGI apps with the service's route shape, `POST
/api/workflows/<id>/test-runs`, for gunicorn (`bench.apps:create('bare')`). Each publishes the
same no-op task with `apply_async`:

- `bare`: plain Celery, no result backend;
- `backend`: plain Celery with its default Redis result backend (a SUBSCRIBE per publish);
- `singleton`: celery-singleton's `Singleton` base (a lock per task name + args);
- `once`: celery_once's `QueueOnce` base (a lock per task name + args; 409 when held).

Settings come from BENCH_REDIS_URL and BENCH_QUEUE."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, Task
from flask import Flask

from worker.core.status import RunStatus

NOOP = "bench.noop"
DONE_KEY = "bench:noop:done"  # the end-to-end bench counts the bare task's completions


def noop_app(kind: str = "bare") -> tuple[Celery, Task]:
    url = os.environ["BENCH_REDIS_URL"]
    celery = Celery("bench", broker=url, backend=url if kind == "backend" else None,
                    set_as_current=False)
    celery.conf.update(task_default_queue=os.environ["BENCH_QUEUE"],
                       task_serializer="json", accept_content=["json"],
                       broker_connection_retry_on_startup=True,
                       singleton_backend_url=url,
                       ONCE={"backend": "celery_once.backends.Redis",
                             "settings": {"url": url, "default_timeout": 3600}})
    base: type[Task] = Task
    if kind == "singleton":
        from celery_singleton import Singleton
        base = Singleton
    elif kind == "once":
        from celery_once import QueueOnce
        base = QueueOnce

    @celery.task(name=NOOP, base=base, shared=False)
    def noop(workflow_id: str) -> None:
        return None  # no worker consumes during the HTTP rounds

    return celery, noop


def create(kind: str) -> Flask:
    celery, noop = noop_app(kind)
    app = Flask(__name__)
    already: tuple[type[BaseException], ...] = ()
    if kind == "once":
        from celery_once import AlreadyQueued
        already = (AlreadyQueued,)

    @app.post("/api/workflows/<path:workflow_id>/test-runs")
    def trigger(workflow_id: str) -> Any:
        try:
            result = noop.apply_async(args=[workflow_id])
        except already:
            return {"error": "test_run_in_progress"}, 409
        return {"run_id": result.id, "status": RunStatus.QUEUED.value}, 202

    return app
