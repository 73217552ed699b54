"""Chaos: Redis (broker, result backend, slots) restarts empty while runs execute. Runs in
progress still end with a recorded status, no terminal run holds a slot, and the service
recovers without restarting any process. With TEST_TRACKING=cluster the tracking restarted
empty is a Redis Cluster of the test's own, every node at once (the broker, apart from it,
keeps its queue); a Redis unreachable while its data survives is one Redis's fault only."""

from __future__ import annotations

import time

import pytest

from devtools.redis_server import RedisServer
from tests.support import tracking
from tests.support.api import (
    active_run_id,
    run_of,
    trigger,
    ts,
    wait_status,
    wait_terminal,
)
from tests.support.procs import Worker, alive, wait_for
from web import create_app
from worker.client import operator
from worker.core.status import TERMINAL, ErrorType, RunStatus

pytestmark = [pytest.mark.broker_matrix, pytest.mark.cluster_tracking]


def wait_recorded_terminal(client, run_id: str, timeout: float) -> dict:
    """Right after an empty restart a run is 404 until its worker writes it back."""
    def ended():
        resp = client.get(f"/api/test-runs/{run_id}")
        if resp.status_code == 200 and resp.get_json()["status"] in TERMINAL:
            return resp.get_json()
        return None

    return wait_for(ended, timeout, f"run {run_id} to be recorded as ended")


def test_redis_restart_mid_run(config, restartable_tracking):
    # every run ends after the outage (one ending inside it is not recorded: `lost`)
    away = restartable_tracking.outage_s
    config = dict(config, **restartable_tracking.settings(), TEST_RUN_TIME_LIMIT=str(6 + away),
                  TEST_RUN_SOFT_TIME_LIMIT=str(5 + away),
                  TEST_RUN_HEARTBEAT_TTL=str(restartable_tracking.heartbeat_ttl))
    client = create_app(config).test_client()
    worker = Worker(config, concurrency=3).wait_ready()
    try:
        runs = {
            "sleeps": trigger(client, "probe", {"mode": "sleep", "seconds": 4 + away})["run_id"],
            "hangs": trigger(client, "hang")["run_id"],
            "short": trigger(client, "sleep", {"seconds": 2 + away})["run_id"],
        }
        for rid in runs.values():
            wait_status(client, rid, RunStatus.RUNNING)
        restartable_tracking.restart_empty()

        # triggers during the outage answered 503 elsewhere; now Redis is back:
        results = {name: wait_recorded_terminal(client, rid, timeout=20)
                   for name, rid in runs.items()}
        assert results["sleeps"]["status"] == RunStatus.SUCCEEDED
        assert results["hangs"]["status"] == RunStatus.TIMED_OUT
        assert results["short"]["status"] == RunStatus.SUCCEEDED
        for run in results.values():
            assert run["finished_at"] is not None
            assert run["record_lost"] is True  # rebuilt by the worker, and it says so
        # no slot held by a terminal run
        for wf in ("probe", "hang", "sleep"):
            assert active_run_id(client, wf) is None
        # recovered without restarting anything
        again = trigger(client, "echo", {"after": "restart"})
        assert wait_terminal(client, again["run_id"])["status"] == RunStatus.SUCCEEDED
        # no exception storm in the worker's log, and no outcome it failed to record
        log = worker.log()
        assert "could not record" not in log, log[-5000:]
        assert log.count("Traceback") <= 5, log[-5000:]
    finally:
        worker.kill_group()


def test_empty_restart_gives_the_running_run_its_slot_back(config, restartable_tracking):
    """The heartbeat writes the record back and re-takes the slot, so no second run starts
    while the first one is still executing."""
    config = dict(config, **restartable_tracking.settings(), TEST_RUN_TIME_LIMIT="20",
                  TEST_RUN_SOFT_TIME_LIMIT="18",
                  TEST_RUN_HEARTBEAT_TTL=str(restartable_tracking.heartbeat_ttl))
    client = create_app(config).test_client()
    worker = Worker(config).wait_ready()
    try:
        # past the outage and the next heartbeat after it
        seconds = 6 + 2 * restartable_tracking.outage_s
        rid = trigger(client, "probe", {"mode": "sleep", "seconds": seconds})["run_id"]
        wait_status(client, rid, RunStatus.RUNNING)
        restartable_tracking.restart_empty()
        # the heartbeat restores the record and the slot, so a second run is refused
        wait_for(lambda: active_run_id(client, "probe") == rid, 5, "the slot to be retaken")
        resp = client.post("/api/workflows/probe/test-runs")
        assert resp.status_code == 409 and resp.get_json()["run_id"] == rid
        done = wait_recorded_terminal(client, rid, timeout=15)
        assert done["status"] == RunStatus.SUCCEEDED
        assert active_run_id(client, "probe") is None
    finally:
        worker.kill_group()


@tracking.single_redis_only(
    "a tracking Redis unreachable while its data survives; on a cluster a worker cut off from "
    "its workflow's master is a migration stalled past the TTL, fenced in "
    "tests/chaos/test_cluster_hosts.py")
@pytest.mark.parametrize("phase", [0.0, 0.4, 0.8])
def test_a_run_whose_lease_cannot_be_renewed_is_killed_before_it_lapses(config, phase):
    """Fencing: Redis unreachable, so the worker cannot renew; it kills the body before the
    lease lapses, whatever the phase of the outage against the heartbeat ticks, and the run
    ends `lost` once Redis is back."""
    ttl = 3.0
    server = RedisServer(persist=True).start()  # the data survives the outage
    config = dict(config, REDIS_URL=server.url, TEST_RUN_TIME_LIMIT="30",
                  TEST_RUN_SOFT_TIME_LIMIT="25", TEST_RUN_HEARTBEAT_TTL=str(ttl))
    app = create_app(config)
    client = app.test_client()
    store = app.extensions["testruns"].store
    worker = Worker(config)
    try:
        worker.wait_ready()
        rid = trigger(client, "sleep", {"seconds": 20})["run_id"]
        started = wait_status(client, rid, RunStatus.RUNNING)
        # a renewal from the heartbeat (not just the start), then the chosen phase after it
        beat = wait_for(lambda: (lambda r: r if r["last_heartbeat_at"] != started[
            "last_heartbeat_at"] else None)(run_of(client, rid)), ttl, "a heartbeat")
        last = ts(beat["last_heartbeat_at"])
        wait_for(lambda: time.time() >= last + phase, 2, "the outage's phase")
        lease_left = operator.slot_ttl_ms(store, "sleep") / 1000
        pid = store.body_of(rid)[1]
        server.stop()
        down = time.monotonic()
        wait_for(lambda: not alive(pid), ttl + 2, "the unrenewable run's process to die")
        killed_after = time.monotonic() - down
        assert killed_after < lease_left, f"killed {killed_after:.2f}s in, lease {lease_left}"
        server.start()
        done = wait_terminal(client, rid, timeout=10)
        assert done["status"] == RunStatus.LOST and done["error_type"] == ErrorType.HEARTBEAT_LOST
        assert active_run_id(client, "sleep") is None
    finally:
        worker.kill_group()
        server.stop()
