"""A deploy: SIGTERM to a worker's main process while runs execute and others wait in the queue.

The running runs get the drain time (TEST_RUN_SHUTDOWN_GRACE) and are then stopped by their
worker: `cancelled`, `worker_shutdown`, their slots freed and their processes dead; the queued
runs stay queued and run on the next worker; nothing reads `lost`. (A run that finishes within
the drain time ends normally: test_worker_death.py's warm-shutdown test.)"""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.api import (
    active_run_id,
    body_events,
    run_of,
    trigger,
    ts,
    wait_status,
    wait_terminal,
)
from tests.support.procs import Worker, alive, wait_for
from web import create_app
from worker.core.status import ErrorType, ReleaseReason, RunStatus

pytestmark = [pytest.mark.broker_matrix, pytest.mark.cluster_tracking]

GRACE = 3.0
#: from the SIGTERM to the drain's start (Celery closes its consumer first), plus the kill
#: and its record (the pool reports a killed process within ~0.5 s during the drain)
SLACK = 2.0


def test_sigterm_drains_then_stops_running_runs_and_leaves_queued_ones_to_the_next_worker(
        config, redis_client):
    # a heartbeat interval (TTL / 3 = 4 s) longer than the drain: it must not wait out a beat
    config = dict(config, TEST_RUN_TIME_LIMIT="60", TEST_RUN_SOFT_TIME_LIMIT="50",
                  TEST_RUN_HEARTBEAT_TTL="12", TEST_RUN_SHUTDOWN_GRACE=str(GRACE))
    client = create_app(config).test_client()
    first = Worker(config, concurrency=2).wait_ready()
    second: Worker | None = None
    try:
        running = [trigger(client, f"soak-0{i}", {"mode": "sleep", "seconds": 60})["run_id"]
                   for i in range(2)]
        for rid in running:
            wait_status(client, rid, RunStatus.RUNNING)
        wait_for(lambda: all(body_events(redis_client, config, rid) for rid in running), 10,
                 "both bodies to start")
        pids = [body_events(redis_client, config, rid)[0]["pid"] for rid in running]
        # both pool processes are busy: these wait in the broker's queue
        queued = [trigger(client, f"soak-1{i}", {"mode": "succeed"})["run_id"]
                  for i in range(3)]

        sigterm = time.time()
        first.signal(signal.SIGTERM)
        assert first.wait_exit(GRACE + SLACK + 10) == 0
        exited = time.time() - sigterm

        ended = [wait_terminal(client, rid, timeout=5) for rid in running]
        took = [ts(run["finished_at"]) - sigterm for run in ended]
        print(f"\nSIGTERM with 2 running and 3 queued, drain {GRACE:g}s: the running runs "
              f"ended {', '.join(f'{t:.2f}s' for t in took)} after it "
              f"({', '.join(r['status'] + '/' + r['error_type'] for r in ended)}); the worker "
              f"exited after {exited:.2f}s")
        for run in ended:
            assert run["status"] == RunStatus.CANCELLED
            assert run["error_type"] == ErrorType.WORKER_SHUTDOWN
            assert run["release_reason"] == ReleaseReason.WORKER_SHUTDOWN
            assert "TEST_RUN_SHUTDOWN_GRACE" in run["error"]
        assert all(GRACE <= t <= GRACE + SLACK for t in took), took
        assert all(active_run_id(client, f"soak-0{i}") is None for i in range(2))
        assert not any(alive(pid) for pid in pids)
        for rid in running:  # killed mid-body: the bodies never reached their end
            assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start"]
        # the queued runs were never this worker's: still queued, still holding their slots
        assert [run_of(client, rid)["status"] for rid in queued] == [RunStatus.QUEUED] * 3
        assert [active_run_id(client, f"soak-1{i}") for i in range(3)] == queued

        second = Worker(config, concurrency=2).wait_ready()
        done = [wait_terminal(client, rid, timeout=20) for rid in queued]
        assert [run["status"] for run in done] == [RunStatus.SUCCEEDED] * 3
        assert {run["worker"] for run in done} == {second.hostname}
        statuses = [run_of(client, rid)["status"] for rid in running + queued]
        assert RunStatus.LOST not in statuses
        print(f"the 3 queued runs succeeded on the restarted worker; statuses {statuses}")
    finally:
        first.kill_group()
        if second is not None:
            second.kill_group()
