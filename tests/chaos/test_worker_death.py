"""Chaos: kill or stop real worker processes mid-run; every slot is freed within the
documented bound and every run ends with a status that says why."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.support.api import active_run_id, body_events, trigger, wait_status, wait_terminal
from tests.support.procs import Worker, alive, holds_throughout, wait_for
from web import create_app
from worker.core.status import ErrorType, ReleaseReason, RunStatus

pytestmark = [pytest.mark.broker_matrix, pytest.mark.cluster_tracking]

HEARTBEAT_TTL = 3.0


class Chaos:
    """One test's config, API client and the workers it started (all killed at teardown)."""

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self.client = create_app(config).test_client()
        self.workers: list[Worker] = []

    def start_worker(self) -> Worker:
        worker = Worker(self.config).wait_ready()
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "".join(w.log() for w in self.workers)


@pytest.fixture
def chaos(config):
    # a long time limit, so only the chaos can end these runs
    chaos = Chaos(dict(config, TEST_RUN_TIME_LIMIT="60", TEST_RUN_SOFT_TIME_LIMIT="50",
                       TEST_RUN_HEARTBEAT_TTL=str(HEARTBEAT_TTL)))
    yield chaos
    for worker in chaos.workers:
        worker.kill_group()


def running_run(client, redis_client, config, seconds: float = 30) -> str:
    rid = trigger(client, "probe", {"mode": "sleep", "seconds": seconds})["run_id"]
    wait_status(client, rid, RunStatus.RUNNING)
    wait_for(lambda: body_events(redis_client, config, rid), 10, "the body to start")
    return rid


def test_worker_main_process_sigkill_frees_the_slot_within_the_heartbeat_ttl(chaos,
                                                                             redis_client):
    config, client = chaos.config, chaos.client
    worker = chaos.start_worker()
    rid = running_run(client, redis_client, config)
    children = worker.children()
    killed = time.monotonic()
    os.kill(worker.pid, signal.SIGKILL)
    done = wait_terminal(client, rid, timeout=HEARTBEAT_TTL + 5)
    freed_after = time.monotonic() - killed
    assert done["status"] == RunStatus.LOST
    assert done["error_type"] == ErrorType.HEARTBEAT_LOST
    assert "stopped answering" in done["error"]
    assert done["release_reason"] == ReleaseReason.LEASE_EXPIRED
    assert freed_after <= HEARTBEAT_TTL + 5
    print(f"slot freed {freed_after:.2f}s after the worker's main process was killed")
    assert active_run_id(client, "probe") is None
    # the pool children died with it: the body never finished
    wait_for(lambda: all(not alive(pid) for pid in children), 5, "children to die")
    assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start"]
    assert trigger(client, "probe", {"mode": "succeed"})["status"] == RunStatus.QUEUED


def test_cold_shutdown_ends_the_run_and_frees_the_slot(chaos, redis_client):
    config, client = chaos.config, chaos.client
    worker = chaos.start_worker()
    rid = running_run(client, redis_client, config)
    stopped = time.monotonic()
    worker.signal(signal.SIGQUIT)
    done = wait_terminal(client, rid, timeout=HEARTBEAT_TTL + 5)
    took = time.monotonic() - stopped
    print(f"cold shutdown: run {done['status']} ({done['error_type']}) after {took:.2f}s")
    assert done["status"] in (RunStatus.FAILED, RunStatus.LOST)
    assert done["error_type"] in (ErrorType.WORKER_LOST, ErrorType.HEARTBEAT_LOST)
    assert active_run_id(client, "probe") is None
    worker.wait_exit(20)
    assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start"]


def test_warm_shutdown_lets_the_run_finish_and_keeps_its_lease(chaos, redis_client):
    config, client = chaos.config, chaos.client
    worker = chaos.start_worker()
    # longer than the heartbeat TTL: the lease must be renewed during the shutdown
    rid = running_run(client, redis_client, config, seconds=HEARTBEAT_TTL * 2)
    worker.signal(signal.SIGTERM)
    holds_throughout(lambda: active_run_id(client, "probe") == rid, HEARTBEAT_TTL * 1.5,
                     "the draining run's hold on its slot")
    done = wait_terminal(client, rid, timeout=15)
    assert done["status"] == RunStatus.SUCCEEDED
    assert worker.wait_exit(20) == 0
    assert active_run_id(client, "probe") is None


def test_cancel_whose_revoke_is_lost_still_stops_the_running_body(chaos, redis_client):
    """The record is the source of truth: cancel without any revoke reaching the worker."""
    config, client = chaos.config, chaos.client
    chaos.start_worker()
    rid = running_run(client, redis_client, config)
    store = create_app(config).extensions["testruns"].store
    store.cancel(rid)  # records it, sends no revoke
    assert store.get(rid).status is RunStatus.CANCELLED
    # its body still runs: the slot stays until the body is gone (strict single-flight)
    assert active_run_id(client, "probe") == rid
    # the worker's heartbeat sees the terminal record and kills the process
    wait_for(lambda: "stopping its process" in chaos.logs(), 5,
             "the heartbeat to stop the cancelled run")
    # its process is dead, so the body never reaches its end; then the slot passes
    pid = body_events(redis_client, config, rid)[0]["pid"]
    wait_for(lambda: active_run_id(client, "probe") is None, 5,
             "the worker to confirm the body is gone")
    assert not alive(pid)
    assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start"]
    assert wait_terminal(client, rid)["status"] == RunStatus.CANCELLED


def test_revoke_sent_while_no_worker_is_up_holds_when_one_starts(chaos, redis_client):
    config, client = chaos.config, chaos.client
    rid = trigger(client, "probe", {"mode": "succeed"})["run_id"]
    resp = client.post(f"/api/test-runs/{rid}/cancel")
    assert resp.status_code == 202 and active_run_id(client, "probe") is None
    chaos.start_worker()
    after = trigger(client, "probe", {"mode": "succeed"})["run_id"]
    assert wait_terminal(client, after)["status"] == RunStatus.SUCCEEDED
    assert body_events(redis_client, config, rid) == []
    assert wait_terminal(client, rid)["status"] == RunStatus.CANCELLED
