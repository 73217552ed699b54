"""A revoke from outside (Flower's button is `app.control.revoke(task_id)`) of a queued run
frees its slot within one heartbeat interval, even while every pool process is busy and no
worker will take the message: the worker's main process reads Celery's revoked set and records
the run `cancelled`, never started."""

from __future__ import annotations

import time

from tests.support.api import expect_status, trigger, wait_status
from tests.support.procs import Worker, wait_for
from web import create_app
from worker.core.settings import Settings
from worker.core.status import ErrorType, ReleaseReason, RunStatus
from worker.runner.revokes import REVOKED_ERROR


def test_a_flower_revoke_of_a_queued_run_frees_its_slot_within_an_interval(config):
    interval = Settings.from_env(overrides=config).heartbeat_interval  # 1 s (TTL 3 s)
    app = create_app(dict(config, TEST_RUN_TIME_LIMIT="40", TEST_RUN_SOFT_TIME_LIMIT="35"))
    client = app.test_client()
    worker = Worker(config, concurrency=1).wait_ready()
    try:
        busy = trigger(client, "sleep", {"seconds": 30})["run_id"]
        wait_status(client, busy, RunStatus.RUNNING, timeout=20)  # the only process is busy
        queued = trigger(client, "echo", {"n": 1})["run_id"]
        assert expect_status(client.get(f"/api/test-runs/{queued}"), 200)["status"] \
            == RunStatus.QUEUED

        started = time.monotonic()
        app.extensions["testruns"].celery.control.revoke(queued)  # what Flower sends
        run = wait_status(client, queued, RunStatus.CANCELLED, timeout=interval + 5)
        took = time.monotonic() - started
        # one heartbeat interval, plus the broadcast's own delivery to the worker
        assert took <= interval + 1.5, f"slot held {took:.2f}s after the revoke"
        assert run["started_at"] is None and run["error_type"] == ErrorType.CANCELLED
        assert run["error"] == REVOKED_ERROR
        assert run["release_reason"] == ReleaseReason.CANCELLED
        assert client.get("/api/workflows/echo").get_json()["active_run_id"] is None
        # the busy run is untouched, and once it is cancelled the revoked one never runs
        assert expect_status(client.get(f"/api/test-runs/{busy}"), 200)["status"] \
            == RunStatus.RUNNING
        expect_status(client.post(f"/api/test-runs/{busy}/cancel"), 202)
        wait_for(lambda: f"Discarding revoked task: testruns.run[{queued}]" in worker.log(), 15,
                 "the worker to drop the revoked message")
        assert expect_status(client.get(f"/api/test-runs/{queued}"), 200)["started_at"] is None
    finally:
        worker.kill_group()
