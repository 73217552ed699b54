"""Chaos: Redis (broker, result backend, slots) restarts empty while runs execute. Runs in
progress still end with a recorded status, no terminal run holds a slot, and the service
recovers without restarting any process."""

from __future__ import annotations

import time

from tests.conftest import TERMINAL, active_run_id, trigger, wait_status, wait_terminal
from tests.support.procs import Worker, wait_for
from web import create_app


def wait_recorded_terminal(client, run_id: str, timeout: float) -> dict:
    """Right after an empty restart a run is 404 until its worker writes it back."""
    def ended():
        resp = client.get(f"/api/test-runs/{run_id}")
        if resp.status_code == 200 and resp.get_json()["status"] in TERMINAL:
            return resp.get_json()
        return None

    return wait_for(ended, timeout, f"run {run_id} to be recorded as ended")


def test_redis_restart_mid_run(config, private_redis):
    config = dict(config, REDIS_URL=private_redis.url, TEST_RUN_TIME_LIMIT="6",
                  TEST_RUN_SOFT_TIME_LIMIT="5", TEST_RUN_HEARTBEAT_TTL="3")
    client = create_app(config).test_client()
    worker = Worker(config, concurrency=3).wait_ready()
    try:
        runs = {
            "sleeps": trigger(client, "probe", {"mode": "sleep", "seconds": 4})["run_id"],
            "hangs": trigger(client, "hang")["run_id"],
            "short": trigger(client, "sleep", {"seconds": 0.5})["run_id"],
        }
        for rid in runs.values():
            wait_status(client, rid, "running")
        private_redis.restart()  # empty: --save "" --appendonly no

        # triggers during the outage answered 503 elsewhere; now Redis is back:
        results = {name: wait_recorded_terminal(client, rid, timeout=20)
                   for name, rid in runs.items()}
        assert results["sleeps"]["status"] == "succeeded"
        assert results["hangs"]["status"] == "timed_out"
        assert results["short"]["status"] == "succeeded"
        for run in results.values():
            assert run["finished_at"] is not None
            assert run["record_lost"] is True  # rebuilt by the worker, and it says so
        # no slot held by a terminal run
        for wf in ("probe", "hang", "sleep"):
            assert active_run_id(client, wf) is None
        # recovered without restarting anything
        again = trigger(client, "echo", {"after": "restart"})
        assert wait_terminal(client, again["run_id"])["status"] == "succeeded"
        # no exception storm in the worker's log
        log = worker.log()
        assert log.count("Traceback") <= 3, log[-5000:]
    finally:
        worker.kill_group()


def test_empty_restart_gives_the_running_run_its_slot_back(config, private_redis):
    """The heartbeat writes the record back and re-takes the slot, so no second run starts
    while the first one is still executing."""
    config = dict(config, REDIS_URL=private_redis.url, TEST_RUN_TIME_LIMIT="20",
                  TEST_RUN_SOFT_TIME_LIMIT="18", TEST_RUN_HEARTBEAT_TTL="1.5")
    client = create_app(config).test_client()
    worker = Worker(config).wait_ready()
    try:
        rid = trigger(client, "probe", {"mode": "sleep", "seconds": 6})["run_id"]
        wait_status(client, rid, "running")
        private_redis.restart()
        # the heartbeat restores the record and the slot, so a second run is refused
        wait_for(lambda: active_run_id(client, "probe") == rid, 5, "the slot to be retaken")
        resp = client.post("/api/workflows/probe/test-runs")
        assert resp.status_code == 409 and resp.get_json()["run_id"] == rid
        done = wait_recorded_terminal(client, rid, timeout=15)
        assert done["status"] == "succeeded"
        assert active_run_id(client, "probe") is None
    finally:
        worker.kill_group()


def test_a_run_whose_lease_cannot_be_renewed_is_killed_before_it_lapses(config,
                                                                        private_redis,
                                                                        redis_client):
    """Fencing: with Redis unreachable the worker cannot renew; it kills the body before the
    lease could lapse, so no later run can overlap it."""
    from tests.support.procs import alive

    ttl = 3.0
    config = dict(config, REDIS_URL=private_redis.url, TEST_RUN_TIME_LIMIT="30",
                  TEST_RUN_SOFT_TIME_LIMIT="25", TEST_RUN_HEARTBEAT_TTL=str(ttl))
    client = create_app(config).test_client()
    worker = Worker(config).wait_ready()
    try:
        rid = trigger(client, "sleep", {"seconds": 20})["run_id"]
        run = wait_status(client, rid, "running")
        assert run["worker"] == worker.hostname
        children = worker.children()
        private_redis.stop()
        gone = time.monotonic()
        wait_for(lambda: any(not alive(p) for p in children), ttl + 2,
                 "the unrenewable run's process to be killed")
        assert time.monotonic() - gone < ttl  # before the lease could have lapsed
        assert "could not be renewed" in worker.log()
        private_redis.start()
        again = trigger(client, "echo")
        assert wait_terminal(client, again["run_id"])["status"] == "succeeded"
    finally:
        worker.kill_group()
