"""No double runs, whatever the broker delivers: a run's message delivered again after the run
ended, published twice while queued, redelivered after its `expires` while the run executes, or
handed to another worker when the one running it died (RabbitMQ, late ack) — the task's start
check lets exactly one delivery execute the body. Real prefork workers on the test's private
queue."""

from __future__ import annotations

import os
import signal
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
from tests.support.broker import (
    assert_queue_stays_empty,
    ignored,
    on_rabbitmq,
    queued_messages,
    received,
)
from tests.support.procs import Worker, wait_for
from web import create_app
from worker.core.celery_app import TASK_NAME
from worker.core.status import ErrorType, RunStatus

pytestmark = pytest.mark.broker_matrix


def publish_duplicate(app, config: dict[str, str], run_id: str, **options) -> None:
    """The same task message again, as a broker redelivery or a repeated publish would."""
    app.extensions["testruns"].celery.send_task(
        TASK_NAME, args=[run_id], task_id=run_id, queue=config["TEST_RUN_QUEUE"],
        ignore_result=True, **options,
    )


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


