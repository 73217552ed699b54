"""The delivery policy, on every broker: a waiting run stays in the shared queue for a free
worker — a busy one reserves nothing beyond what it runs (RabbitMQ: late ack, a prefetch of one
per process; Redis: a message taken only when a process is free) — and every ending settles its
delivery, so nothing comes back once the worker is gone. Real prefork workers on the test's
private queue. (No double runs whatever is delivered: test_delivery.py.)"""

from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

from tests.support.api import body_events, parse_time, run_of, trigger, wait_status, wait_terminal
from tests.support.broker import assert_queue_stays_empty, received
from tests.support.procs import Worker, wait_for
from web import create_app
from worker.core.status import RunStatus

pytestmark = pytest.mark.broker_matrix


def test_a_waiting_run_is_taken_by_the_idle_worker_not_reserved_by_the_busy_one(config):
    """Two workers of one process each: while one runs a long body, each next run (another
    workflow's) must start on the other within a second — never sit reserved behind the long
    run (on RabbitMQ a busy worker reserves nothing beyond what it runs: late ack, prefetch 1
    per process; on Redis it takes a message only when a process is free)."""
    config = dict(config, TEST_RUN_TIME_LIMIT="60", TEST_RUN_SOFT_TIME_LIMIT="50")
    client = create_app(config).test_client()
    workers = [Worker(config, concurrency=1).wait_ready() for _ in range(2)]
    try:
        long = trigger(client, "probe", {"mode": "sleep", "seconds": 30})["run_id"]
        busy = wait_status(client, long, RunStatus.RUNNING)["worker"]
        idle = next(w.hostname for w in workers if w.hostname != busy)
        waits = []
        for i in range(6):  # RabbitMQ deals round robin: six chances to hit the busy one
            rid = trigger(client, f"soak-{i:02d}", {"mode": "succeed"})["run_id"]
            run = wait_for(lambda rid=rid: (lambda r: r if r["status"] != RunStatus.QUEUED
                                            else None)(run_of(client, rid)), 5,
                           f"run {i} to leave the queue (still queued: reserved behind the "
                           "long run by the busy worker?)")
            waits.append((parse_time(run["started_at"]) - parse_time(run["created_at"]))
                         .total_seconds())
            assert run["worker"] == idle, f"run {i} went to the busy worker {run['worker']}"
            assert wait_terminal(client, rid)["status"] == RunStatus.SUCCEEDED
        print(f"idle worker took each run after {', '.join(f'{w:.3f}' for w in waits)} s")
        assert max(waits) <= 1.0, waits
        assert run_of(client, long)["status"] == RunStatus.RUNNING
    finally:
        for worker in workers:
            worker.kill_group()


def test_every_ending_settles_its_delivery(config, redis_client):
    """Success, failure, the hard time limit, a killed pool process, a cancel's kill and a
    revoke with terminate (Flower's) each settle the run's message: after the worker is gone,
    none of them comes back to the queue. (Late ack on RabbitMQ must ack every ending, never
    requeue one: a run is never re-run.)"""
    app = create_app(config)
    client = app.test_client()
    worker = Worker(config, concurrency=1).wait_ready()
    endings: dict[str, str] = {}
    run_ids: list[str] = []
    try:
        def running(workflow_id: str) -> tuple[str, int]:
            rid = trigger(client, workflow_id, {"mode": "sleep", "seconds": 30})["run_id"]
            run_ids.append(rid)
            wait_for(lambda: body_events(redis_client, config, rid), 10, "the body to start")
            return rid, body_events(redis_client, config, rid)[0]["pid"]

        for mode in ("succeed", "fail", "hang"):
            rid = trigger(client, f"soak-0{len(endings)}", {"mode": mode})["run_id"]
            run_ids.append(rid)
            endings[mode] = wait_terminal(client, rid)["status"]
        rid, pid = running("soak-03")
        os.kill(pid, signal.SIGKILL)
        endings["killed child"] = wait_terminal(client, rid)["status"]
        rid, _ = running("soak-04")
        client.post(f"/api/test-runs/{rid}/cancel")
        endings["cancel"] = wait_terminal(client, rid)["status"]
        rid, _ = running("soak-05")
        app.extensions["testruns"].celery.control.revoke(rid, terminate=True, signal="SIGKILL")
        endings["revoke"] = wait_terminal(client, rid)["status"]
        assert endings == {"succeed": RunStatus.SUCCEEDED, "fail": RunStatus.FAILED,
                           "hang": RunStatus.TIMED_OUT, "killed child": RunStatus.FAILED,
                           "cancel": RunStatus.CANCELLED, "revoke": RunStatus.CANCELLED}
        # each delivered once: no ending requeued its message (it would come back, refused)
        assert [received(worker, rid) for rid in run_ids] == [1] * 6
        assert_queue_stays_empty(config, worker)
        starts = Counter(e["run_id"] for e in body_events(redis_client, config)
                         if e["event"] == "start")
        assert len(starts) == 6 and set(starts.values()) == {1}, starts  # none ran twice
    finally:
        worker.kill_group()
