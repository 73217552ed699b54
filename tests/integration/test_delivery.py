"""Delivery on every broker: a waiting run stays in the shared queue for a free worker (a busy
one reserves nothing beyond what it runs), and no double runs whatever the broker delivers — a
run's message delivered again after the run ended, published twice while queued, or redelivered
after its `expires` while the run executes: the task's start check lets exactly one delivery
execute the body. Real prefork workers on the test's private queue."""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.support.api import (
    active_run_id,
    body_events,
    parse_time,
    run_of,
    trigger,
    wait_status,
    wait_terminal,
)
from tests.support.broker import queued_messages
from tests.support.procs import Worker, holds_throughout, wait_for
from web import create_app
from worker.core.celery_app import TASK_NAME
from worker.core.status import ErrorType, RunStatus

pytestmark = pytest.mark.broker_matrix


def on_rabbitmq(config: dict[str, str]) -> bool:
    return config.get("CELERY_BROKER_URL", "").startswith("amqp")


def assert_queue_stays_empty(config: dict[str, str], worker: Worker) -> None:
    """Stop the worker (warm: the acks it has scheduled go out first; a SIGKILL a millisecond
    after a run ended could beat its ack), then nothing may come back to the queue: a delivery
    it left unacked is requeued the moment its connection closes (RabbitMQ)."""
    worker.signal(signal.SIGTERM)
    worker.wait_exit(30)
    holds_throughout(lambda: queued_messages(config) == 0, 1.5,
                     "an empty queue after the worker's connection closed")


def publish_duplicate(app, config: dict[str, str], run_id: str, **options) -> None:
    """The same task message again, as a broker redelivery or a repeated publish would."""
    app.extensions["testruns"].celery.send_task(
        TASK_NAME, args=[run_id], task_id=run_id, queue=config["TEST_RUN_QUEUE"],
        ignore_result=True, **options,
    )


def received(worker: Worker, run_id: str) -> int:
    return worker.log().count(f"{TASK_NAME}[{run_id}] received")


def ignored(worker: Worker, run_id: str) -> int:
    return worker.log().count(f"{TASK_NAME}[{run_id}] ignored")


def test_a_duplicate_delivered_after_the_run_ended_does_not_run_it_again(
        config, idle_app, redis_client):
    client = idle_app.test_client()
    # one pool process: the duplicate is handled before the follow-up run can start
    worker = Worker(config, concurrency=1).wait_ready()
    try:
        rid = trigger(client, "probe", {"mode": "succeed"})["run_id"]
        first = wait_terminal(client, rid)
        assert first["status"] == RunStatus.SUCCEEDED

        publish_duplicate(idle_app, config, rid)
        follow = trigger(client, "probe", {"mode": "succeed"})
        assert wait_terminal(client, follow["run_id"])["status"] == RunStatus.SUCCEEDED
        wait_for(lambda: ignored(worker, rid) == 1, 10, "the duplicate to be refused")
        assert received(worker, rid) == 2  # the duplicate really reached the worker
    finally:
        worker.kill_group()

    assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start", "end"]
    after = run_of(client, rid)
    for field in ("status", "started_at", "finished_at", "result", "release_reason",
                  "released_at", "worker"):
        assert after[field] == first[field], field
    assert active_run_id(client, "probe") is None


def test_duplicates_published_while_queued_run_the_body_once(config, idle_app, redis_client):
    client = idle_app.test_client()
    rid = trigger(client, "probe", {"mode": "succeed"})["run_id"]
    publish_duplicate(idle_app, config, rid)
    publish_duplicate(idle_app, config, rid)
    assert queued_messages(config) == 3
    # two pool processes, so two deliveries of the run can race through the start check
    worker = Worker(config, concurrency=2).wait_ready()
    try:
        done = wait_terminal(client, rid)
        wait_for(lambda: ignored(worker, rid) == 2, 10, "both duplicates to be refused")
        assert received(worker, rid) == 3
        follow = trigger(client, "probe", {"mode": "succeed"})
        assert wait_terminal(client, follow["run_id"])["status"] == RunStatus.SUCCEEDED
    finally:
        worker.kill_group()

    assert done["status"] == RunStatus.SUCCEEDED
    assert [e["event"] for e in body_events(redis_client, config, rid)].count("start") == 1
    assert run_of(client, rid)["status"] == RunStatus.SUCCEEDED
    assert active_run_id(client, "probe") is None


def test_an_expired_duplicate_of_a_running_run_leaves_it_running(config, redis_client):
    """Celery discards a duplicate delivered after its `expires` with task_revoked(expired);
    that must not expire (and free the slot of) the run that is executing."""
    # a 2 s queue timeout, so the original message's `expires` passes while the body runs
    config = dict(config, TEST_RUN_QUEUE_TIMEOUT="2", TEST_RUN_TIME_LIMIT="10",
                  TEST_RUN_SOFT_TIME_LIMIT="8")
    app = create_app(config)
    client = app.test_client()
    worker = Worker(config, concurrency=2).wait_ready()
    try:
        run = trigger(client, "probe", {"mode": "sleep", "seconds": 4})
        rid = run["run_id"]
        wait_status(client, rid, RunStatus.RUNNING, timeout=5)
        # the message the service published carries expires = publish time + queue timeout;
        # redeliver that same message once that moment has passed, while the body still runs
        expires = parse_time(run["created_at"]) + timedelta(
            seconds=float(config["TEST_RUN_QUEUE_TIMEOUT"]))
        wait_for(lambda: datetime.now(UTC) > expires + timedelta(milliseconds=50), 6,
                 "the original message to expire")
        publish_duplicate(app, config, rid, expires=expires)
        wait_for(lambda: f"Discarding revoked task: {TASK_NAME}[{rid}]" in worker.log(), 5,
                 "the worker to discard the expired duplicate")
        assert run_of(client, rid)["status"] == RunStatus.RUNNING
        assert trigger(client, "probe", expect=409)["run_id"] == rid
        done = wait_terminal(client, rid, timeout=10)
        assert done["status"] == RunStatus.SUCCEEDED
    finally:
        worker.kill_group()
    assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start", "end"]



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


def test_a_run_whose_worker_dies_mid_run_never_executes_again(config, redis_client):
    """The worker running a body dies with its pool (SIGKILL to the group). On RabbitMQ its
    unacked delivery comes straight back and the idle worker takes it: the start check refuses
    it (the run already started), so the body runs once and the run ends `lost` with its lease.
    On Redis the message was acked when the run started, so nothing comes back at all."""
    config = dict(config, TEST_RUN_TIME_LIMIT="60", TEST_RUN_SOFT_TIME_LIMIT="50")
    client = create_app(config).test_client()
    dying = Worker(config, concurrency=1).wait_ready()
    spare = None
    try:
        rid = trigger(client, "probe", {"mode": "sleep", "seconds": 30})["run_id"]
        wait_status(client, rid, RunStatus.RUNNING)
        wait_for(lambda: body_events(redis_client, config, rid), 10, "the body to start")
        spare = Worker(config, concurrency=1).wait_ready()
        os.killpg(dying.pid, signal.SIGKILL)
        if on_rabbitmq(config):
            wait_for(lambda: ignored(spare, rid) == 1, 10, "the redelivery to be refused")
        done = wait_terminal(client, rid, timeout=10)
        assert done["status"] == RunStatus.LOST, done
        assert done["error_type"] == ErrorType.HEARTBEAT_LOST
        assert received(spare, rid) == (1 if on_rabbitmq(config) else 0)
        assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start"]
        # the refused redelivery was acked, not left to come back again
        assert_queue_stays_empty(config, spare)
    finally:
        dying.kill_group()
        if spare is not None:
            spare.kill_group()


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
