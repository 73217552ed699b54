"""Every way a run ends, against a real prefork worker subprocess."""

from __future__ import annotations

import os
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
from worker.core.status import ErrorType, ReleaseReason, RunStatus

pytestmark = [pytest.mark.broker_matrix, pytest.mark.cluster_tracking]


def assert_slot_free(client, workflow_id: str) -> None:
    assert active_run_id(client, workflow_id) is None
    again = trigger(client, workflow_id, {"mode": "succeed"} if workflow_id == "probe" else {})
    wait_terminal(client, again["run_id"])
    assert active_run_id(client, workflow_id) is None


def test_echo_succeeds_with_its_result_and_logs(client):
    run = trigger(client, "echo", {"greeting": "hi", "n": [1, 2]})
    assert run["status"] == RunStatus.QUEUED and run["type"] == "test"
    done = wait_terminal(client, run["run_id"])
    assert done["status"] == RunStatus.SUCCEEDED
    assert done["result"] == {"greeting": "hi", "n": [1, 2]}
    assert done["error"] is None and done["error_type"] is None
    assert done["started_at"] and done["finished_at"] and done["worker"]
    assert any("echoing 2 field(s)" in line for line in done["logs"])
    assert done["release_reason"] == ReleaseReason.SUCCEEDED
    assert_slot_free(client, "echo")


def test_fail_is_failed_with_error_and_type(client):
    run = trigger(client, "fail", {"message": "kaput"})
    done = wait_terminal(client, run["run_id"])
    assert done["status"] == RunStatus.FAILED
    assert done["error_type"] == ErrorType.ERROR
    assert "kaput" in done["error"]
    assert done["release_reason"] == ReleaseReason.FAILED
    assert_slot_free(client, "fail")


def test_sleep_past_soft_limit_times_out(client):
    # `probe`, not the bundled `sleep`, which clamps itself to end before the soft limit
    run = trigger(client, "probe", {"mode": "sleep", "seconds": 30})
    done = wait_terminal(client, run["run_id"])
    assert done["status"] == RunStatus.TIMED_OUT
    assert done["error_type"] == ErrorType.TIMEOUT
    assert "soft time limit" in done["error"]
    assert_slot_free(client, "probe")


def test_hang_is_ended_by_the_hard_limit(client):
    run = trigger(client, "hang")
    done = wait_terminal(client, run["run_id"], timeout=20)
    assert done["status"] == RunStatus.TIMED_OUT
    assert "hard time limit" in done["error"]
    assert any("ignoring the soft time limit" in line for line in done["logs"])
    assert_slot_free(client, "hang")


def test_cancel_while_running_stops_the_body_then_frees_the_slot(config, redis_client):
    from web import create_app

    # a long time limit, so only the cancel can end the run
    config = dict(config, TEST_RUN_TIME_LIMIT="60", TEST_RUN_SOFT_TIME_LIMIT="50")
    client = create_app(config).test_client()
    worker = Worker(config)
    try:
        worker.wait_ready()
        rid = trigger(client, "probe", {"mode": "sleep", "seconds": 30})["run_id"]
        wait_status(client, rid, RunStatus.RUNNING)
        wait_for(lambda: body_events(redis_client, config, rid), 5, "the body to start")
        resp = client.post(f"/api/test-runs/{rid}/cancel")
        assert resp.status_code == 202
        assert resp.get_json()["status"] == RunStatus.CANCELLED
        # strict single-flight: it reads cancelled at once, but the slot passes only once its
        # worker confirms the body stopped (the kill's signal records it): never before
        pid = body_events(redis_client, config, rid)[0]["pid"]
        wait_for(lambda: active_run_id(client, "probe") is None, 10,
                 "the worker to confirm the body stopped")
        assert not alive(pid), "the slot was free while the cancelled body still ran"
        assert f"test run stopped run_id={rid} workflow_id=probe pid={pid} why=cancelled " \
               "by request" in worker.log()
        assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start"]
        assert run_of(client, rid)["status"] == RunStatus.CANCELLED
        assert_slot_free(client, "probe")
    finally:
        worker.kill_group()


def test_cancel_while_queued_never_runs_the_body(idle_client, config, redis_client):
    run = trigger(idle_client, "probe", {"mode": "succeed"})
    rid = run["run_id"]
    resp = idle_client.post(f"/api/test-runs/{rid}/cancel")
    assert resp.status_code == 202 and resp.get_json()["status"] == RunStatus.CANCELLED
    assert active_run_id(idle_client, "probe") is None
    # a worker arrives later (the revoke was broadcast before any worker was up)
    worker = Worker(config).wait_ready()
    try:
        follow = trigger(idle_client, "probe", {"mode": "succeed"})
        wait_terminal(idle_client, follow["run_id"])  # the worker drained the queue past rid
        assert body_events(redis_client, config, rid) == []
        assert run_of(idle_client, rid)["status"] == RunStatus.CANCELLED
    finally:
        worker.kill_group()


def test_killed_pool_child_fails_as_worker_lost_and_is_not_rerun(config, redis_client):
    from web import create_app

    # a long time limit, so the hard limit cannot be what ends the run
    config = dict(config, TEST_RUN_TIME_LIMIT="60", TEST_RUN_SOFT_TIME_LIMIT="50")
    client = create_app(config).test_client()
    worker = Worker(config).wait_ready()
    try:
        rid = trigger(client, "probe", {"mode": "sleep", "seconds": 40})["run_id"]
        wait_for(lambda: body_events(redis_client, config, rid), 10, "the body to start")
        pid = body_events(redis_client, config, rid)[0]["pid"]
        assert pid in worker.children()
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        done = wait_terminal(client, rid, timeout=30)
        assert done["status"] == RunStatus.FAILED, done
        assert done["error_type"] == ErrorType.WORKER_LOST
        assert done["release_reason"] == ReleaseReason.WORKER_LOST
        print(f"worker_lost recorded {time.monotonic() - started:.2f}s after the kill")
        assert active_run_id(client, "probe") is None
        assert_slot_free(client, "probe")
        starts = [e for e in body_events(redis_client, config, rid) if e["event"] == "start"]
        assert len(starts) == 1  # not re-run
    finally:
        worker.kill_group()


def test_run_queued_past_queue_timeout_expires_and_never_runs(config, redis_client):
    from web import create_app

    config = dict(config, TEST_RUN_QUEUE_TIMEOUT="1", TEST_RUN_LEASE_GRACE="30")
    client = create_app(config).test_client()
    run = trigger(client, "probe", {"mode": "succeed"})
    rid = run["run_id"]
    # the queue timeout passes while no worker consumes the queue
    wait_for(lambda: time.time() * 1000 > 1500 + ts(run["created_at"]) * 1000, 5, "queue timeout")
    worker = Worker(config).wait_ready()
    try:
        done = wait_terminal(client, rid, timeout=15)
        assert done["status"] == RunStatus.EXPIRED
        assert done["error_type"] == ErrorType.QUEUE_TIMEOUT
        assert done["started_at"] is None
        assert active_run_id(client, "probe") is None
        assert body_events(redis_client, config, rid) == []
    finally:
        worker.kill_group()


def test_queued_run_with_no_worker_expires_when_its_lease_runs_out(config, redis_client):
    from web import create_app

    config = dict(config, TEST_RUN_QUEUE_TIMEOUT="1", TEST_RUN_LEASE_GRACE="1")
    client = create_app(config).test_client()
    rid = trigger(client, "probe", {"mode": "succeed"})["run_id"]
    done = wait_terminal(client, rid, timeout=10)
    assert done["status"] == RunStatus.EXPIRED
    assert done["release_reason"] == ReleaseReason.LEASE_EXPIRED
    assert active_run_id(client, "probe") is None
    assert trigger(client, "probe", {"mode": "succeed"})["status"] == RunStatus.QUEUED
