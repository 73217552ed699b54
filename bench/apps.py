"""The baselines as WSGI apps with the service's route shape, `POST
/api/workflows/<id>/test-runs`, for gunicorn (`bench.apps:create('bare')`). Each publishes the
same no-op task with `apply_async`:

- `bare`: plain Celery, no result backend;
- `backend`: plain Celery with its default Redis result backend (a SUBSCRIBE per publish);
- `singleton`: celery-singleton's `Singleton` base (a lock per task name + args);
- `once`: celery_once's `QueueOnce` base (a lock per task name + args; 409 when held).

And the two bounds no tracked trigger on this stack can pass, with no Celery at all:

- `floor`: the same Flask answering 202 and touching nothing (no Redis, no validation);
- `limit`: the same Flask doing exactly one EVALSHA per request and nothing else: take the
  workflow's slot and push a 1 KB message in one script (202), or answer the holder (409) —
  what a fused admission and a one-round-trip conflict cost at the least.

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


#: the limit's one script: the slot (SET NX with a lease) and the message, or the holder
LIMIT_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('LPUSH', KEYS[2], ARGV[3])
return false
"""
#: the size of the message the limit pushes (a run's task message is ~1 KB)
LIMIT_MESSAGE = "x" * 1024


def bounds(kind: str) -> Flask:
    """The floor (202, nothing touched) or the limit (one EVALSHA) as a Flask app."""
    app = Flask(__name__)
    if kind == "floor":
        @app.post("/api/workflows/<path:workflow_id>/test-runs")
        def floor(workflow_id: str) -> Any:
            return {"run_id": workflow_id, "status": RunStatus.QUEUED.value}, 202

        return app
    import uuid

    import redis
    client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"], decode_responses=True)
    script = client.register_script(LIMIT_LUA)
    queue = os.environ["BENCH_QUEUE"]

    @app.post("/api/workflows/<path:workflow_id>/test-runs")
    def limit(workflow_id: str) -> Any:
        run_id = f"{workflow_id}-{uuid.uuid4().hex}"
        holder = script(keys=[f"limit:{{{workflow_id}}}:slot", queue],
                        args=[run_id, 600_000, LIMIT_MESSAGE])
        if holder:
            return {"error": "test_run_in_progress", "run_id": holder}, 409
        return {"run_id": run_id, "status": RunStatus.QUEUED.value}, 202

    return app


def create(kind: str) -> Flask:
    if kind in ("floor", "limit"):
        return bounds(kind)
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
