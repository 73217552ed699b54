"""The end-to-end bench's worker app: the service's Celery app (`celery -A bench.worker_app`),
with the bare no-op task registered beside the test-run task, so both run through the same
2-process prefork worker."""

from __future__ import annotations

from worker.runner.app import create_worker_app

from .apps import DONE_KEY, NOOP

app = create_worker_app()


@app.task(name=NOOP, shared=False, ignore_result=True)
def noop(workflow_id: str) -> None:
    client = app.store.connection.redis
    client.incr(DONE_KEY)

