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


def _age_run(store, config, workflow_id: str, run_id: str, left_s: float) -> None:
    """Move the run's admission back so that `left_s` of its queue time remains."""
    from tests.support.api import keys_of

    client = store.connection.redis
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    created = now_ms - int((store.settings.queue_timeout - left_s) * 1000)
    client.hset(keys_of(config).run(workflow_id, run_id), "created_ms", created)


def test_a_revoke_reads_cancelled_with_time_left_and_expired_in_its_last_second(idle_client,
                                                                                 config):
    """One answer whichever path records a revoke (the heartbeat's sweep, Celery discarding
    or expiring the message): decided by Redis' clock, with a second's margin."""
    from tests.support.api import store_of
    from worker.runner.revokes import EXPIRED_ERROR, end_revoked

    store = store_of(config)
    cases = {"soak-00": 2.5, "soak-01": 0.5, "soak-02": -3.0}  # queue time left, seconds
    runs = {wf: trigger(idle_client, wf, {"mode": "succeed"})["run_id"] for wf in cases}
    for wf, left in cases.items():
        _age_run(store, config, wf, runs[wf], left)
        assert end_revoked(store, runs[wf]) is True
        assert end_revoked(store, runs[wf]) is False  # ended once
    got = {wf: expect_status(idle_client.get(f"/api/test-runs/{rid}"), 200)
           for wf, rid in runs.items()}
    assert got["soak-00"]["status"] == RunStatus.CANCELLED
    assert got["soak-00"]["error"] == REVOKED_ERROR
    for wf in ("soak-01", "soak-02"):
        assert got[wf]["status"] == RunStatus.EXPIRED
        assert got[wf]["error_type"] == ErrorType.QUEUE_TIMEOUT
        assert got[wf]["release_reason"] == ReleaseReason.EXPIRED
        assert got[wf]["error"] == EXPIRED_ERROR
    assert all(run["started_at"] is None for run in got.values())


def test_a_flower_revoke_in_a_runs_last_milliseconds_reads_expired(config):
    """Revoked 0.3 s before its queue timeout, while the only pool process is busy: the
    heartbeat's sweep records it within an interval, as `expired` — what Celery's own expiry
    of the message, once a process is free, says too — never `cancelled`."""
    config = dict(config, TEST_RUN_QUEUE_TIMEOUT="4", TEST_RUN_TIME_LIMIT="40",
                  TEST_RUN_SOFT_TIME_LIMIT="35")
    app = create_app(config)
    client = app.test_client()
    store = app.extensions["testruns"].store
    worker = Worker(config, concurrency=1).wait_ready()
    try:
        busy = trigger(client, "sleep", {"seconds": 30})["run_id"]
        wait_status(client, busy, RunStatus.RUNNING, timeout=20)
        queued = trigger(client, "echo", {"n": 1})["run_id"]
        created = store.get(queued).created_ms

        def last_moments() -> bool:
            seconds, micros = store.connection.redis.time()
            return seconds * 1000 + micros // 1000 - created >= 3700  # 0.3 s left

        wait_for(last_moments, 10, "the run's last 0.3 s of queue time", interval=0.01)
        app.extensions["testruns"].celery.control.revoke(queued)
        run = wait_status(client, queued, {RunStatus.EXPIRED, RunStatus.CANCELLED}, timeout=5)
        assert run["status"] == RunStatus.EXPIRED, run
        assert run["error_type"] == ErrorType.QUEUE_TIMEOUT and run["started_at"] is None
        expect_status(client.post(f"/api/test-runs/{busy}/cancel"), 202)
        wait_for(lambda: f"Discarding revoked task: testruns.run[{queued}]" in worker.log(), 15,
                 "the worker to drop the message")
        assert expect_status(client.get(f"/api/test-runs/{queued}"), 200)["status"] \
            == RunStatus.EXPIRED  # a terminal status never changes
    finally:
        worker.kill_group()
