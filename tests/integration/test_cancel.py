"""A cancel never hangs on the broker: with the broker (a Redis of its own) killed while runs
execute, cancel and replace answer within a second every time; the record says cancelled at
once, and the runs' processes are stopped by their worker's heartbeat instead — then their
slots pass on (a replacing run, pending until then, cannot be published while the broker is
down: it ends failed, enqueue_failed)."""

from __future__ import annotations

import threading
import time

import pytest

from devtools.redis_server import RedisServer
from tests.support.api import active_run_id, run_of, trigger, wait_status
from tests.support.procs import Worker, alive, wait_for
from web import create_app
from worker.client import stop
from worker.core import publish
from worker.core.status import ErrorType, RunStatus

pytestmark = pytest.mark.cluster_tracking

RUNS = 20


@pytest.fixture
def broker_server():
    server = RedisServer().start()
    yield server
    server.stop()


def test_cancel_and_replace_answer_within_a_second_with_the_broker_killed(config,
                                                                          broker_server):
    config = dict(config, CELERY_BROKER_URL=broker_server.url, TEST_RUN_TIME_LIMIT="60",
                  TEST_RUN_SOFT_TIME_LIMIT="50", TEST_RUN_HEARTBEAT_TTL="3")
    app = create_app(config)
    client, store = app.test_client(), app.extensions["testruns"].store
    worker = Worker(config, concurrency=RUNS).wait_ready(timeout=60)
    try:
        workflows = [f"soak-{i:02d}" for i in range(RUNS)]
        runs = {wf: trigger(client, wf, {"mode": "sleep", "seconds": 50})["run_id"]
                for wf in workflows}
        for run_id in runs.values():
            wait_status(client, run_id, RunStatus.RUNNING, timeout=30)
        pids = {run_id: store.body_of(run_id)[1] for run_id in runs.values()}
        # a warm connection to the broker in this web process, then the broker dies
        assert client.get("/readyz").status_code == 200
        broker_server.stop()

        took = []
        for wf in workflows[:-2]:
            started = time.monotonic()
            resp = client.post(f"/api/test-runs/{runs[wf]}/cancel")
            took.append(time.monotonic() - started)
            assert resp.status_code == 202 and resp.get_json()["status"] == RunStatus.CANCELLED
        replacing = {}
        for wf in workflows[-2:]:  # replace: the holder is cancelled, the new one pending
            started = time.monotonic()
            resp = client.post(f"/api/workflows/{wf}/test-runs?on_conflict=replace",
                               json={"input": {"mode": "succeed"}})
            took.append(time.monotonic() - started)
            assert resp.status_code == 202 and resp.get_json()["status"] == RunStatus.PENDING
            replacing[wf] = resp.get_json()["run_id"]
            assert run_of(client, runs[wf])["status"] == RunStatus.CANCELLED
        print(f"cancel/replace with the broker killed: max {max(took):.3f}s over {len(took)}")
        assert max(took) < 1.0, took

        # no message reached the worker: its heartbeat (Redis is up) stops every process
        wait_for(lambda: not any(alive(pid) for pid in pids.values()), 10,
                 "the heartbeat to stop every cancelled run's process")
        wait_for(lambda: all(active_run_id(client, wf) is None for wf in workflows), 10,
                 "each slot to pass once its body is gone")
        for run_id in replacing.values():  # promoted, but the broker is still down
            ended = run_of(client, run_id)
            assert (ended["status"], ended["error_type"]) == (RunStatus.FAILED,
                                                              ErrorType.ENQUEUE_FAILED), ended
    finally:
        worker.kill_group()


def test_a_running_run_is_recorded_cancelled_before_its_stop_is_sent(config, private_redis):
    """The worker's confirmation that a killed body is gone frees the slot only of a run that
    is already terminal: a stop that reached the worker before the cancel was recorded left
    the slot to its lease (a soak's last round held it until then). On one Redis that is both
    broker and tracking, MONITOR sees the two in the order Redis ran them: the cancel's
    finish script, then the stop's PUBLISH. And the slot passes well within the lease."""
    config = dict(config, REDIS_URL=private_redis.url, TEST_RUN_HEARTBEAT_TTL="30",
                  TEST_RUN_TIME_LIMIT="60", TEST_RUN_SOFT_TIME_LIMIT="50")
    for key in ("CELERY_BROKER_URL", "TEST_RUN_TRACKING_URL"):  # both on the private Redis
        config.pop(key, None)
    client = create_app(config).test_client()
    worker = Worker(config, concurrency=1).wait_ready()
    seen: list[str] = []
    stop_monitor = threading.Event()

    def monitor() -> None:
        with private_redis.client().monitor() as mon:
            ready.set()
            while not stop_monitor.is_set():
                said = mon.next_command()
                if said["client_type"] != "lua" and said["command"].startswith(
                        ("EVALSHA", "PUBLISH")):
                    seen.append(said["command"])

    ready = threading.Event()
    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    try:
        assert ready.wait(5)
        run_id = trigger(client, "soak-00", {"mode": "sleep", "seconds": 50})["run_id"]
        wait_status(client, run_id, RunStatus.RUNNING, timeout=30)
        cancelled_at = time.monotonic()
        assert client.post(f"/api/test-runs/{run_id}/cancel").status_code == 202
        wait_for(lambda: active_run_id(client, "soak-00") is None, 10,
                 "the slot to pass once the worker confirmed the body gone")
        freed_after = time.monotonic() - cancelled_at
        stop_monitor.set()
        private_redis.client().ping()  # one more command wakes the monitor to stop
        thread.join(5)
        recorded = next(i for i, c in enumerate(seen)
                        if c.startswith("EVALSHA") and run_id in c
                        and "cancelled by request" in c)
        stop = next(i for i, c in enumerate(seen) if c.startswith("PUBLISH") and "pidbox" in c)
        assert recorded < stop, seen[min(recorded, stop):max(recorded, stop) + 1]
        print(f"slot passed {freed_after:.3f}s after the cancel (lease 30 s)")
        assert freed_after < 5, freed_after
    finally:
        stop_monitor.set()
        worker.kill_group()


def test_a_stop_kills_the_body_never_a_duplicate_delivery_of_it(config, private_redis,
                                                                 broker_server):
    """A duplicate delivery of a running run's message (a redelivery after a lost connection)
    is active, with the run's id, for the moments until its start check refuses it. A stop
    landing then must kill the body — the process the start check recorded — and leave the
    duplicate alone: killed for the run, its death would free the slot while the body ran on.
    The tracking Redis is paused for writes (CLIENT PAUSE WRITE) to hold the duplicate in its
    start check while the stop arrives; the broker, a Redis of its own, still delivers."""
    config = dict(config, REDIS_URL=private_redis.url, CELERY_BROKER_URL=broker_server.url,
                  TEST_RUN_HEARTBEAT_TTL="30", TEST_RUN_TIME_LIMIT="60",
                  TEST_RUN_SOFT_TIME_LIMIT="50")
    config.pop("TEST_RUN_TRACKING_URL", None)
    app = create_app(config)
    client, service = app.test_client(), app.extensions["testruns"]
    store, celery = service.store, service.celery
    worker = Worker(config, concurrency=2).wait_ready()
    try:
        run_id = trigger(client, "soak-00", {"mode": "sleep", "seconds": 50})["run_id"]
        wait_status(client, run_id, RunStatus.RUNNING, timeout=30)
        body = store.body_of(run_id)[1]
        store.cancel(run_id)  # recorded; the stop comes below, once the duplicate is in
        private_redis.client().execute_command("CLIENT", "PAUSE", "4000", "WRITE")
        publish.publish(celery, service.settings, run_id)  # the duplicate delivery

        def active_pids() -> list[int]:
            found = celery.control.inspect(destination=[worker.hostname], timeout=1).active()
            return [r["worker_pid"] for r in (found or {}).get(worker.hostname, [])
                    if r["id"] == run_id]

        pids = wait_for(lambda: (lambda p: p if len(p) == 2 else None)(active_pids()), 3,
                        "the duplicate to be active beside the body")
        duplicate = next(p for p in pids if p != body)
        assert stop.send_stop(celery, run_id, timeout=1)
        wait_for(lambda: not alive(body), 3, "the body to be killed")
        assert alive(duplicate), "the stop killed the duplicate delivery"
        # writes again, before the confirmation of the body's death (held by the pause) times
        # out — it would leave the slot to the lease: the duplicate is refused, the slot passes
        private_redis.client().execute_command("CLIENT", "UNPAUSE")
        # (a read answers 503 while Redis is paused: its scripts count as writes)
        wait_for(lambda: client.get("/api/workflows/soak-00").get_json().get(
            "active_run_id", run_id) is None, 10, "the slot to pass")
        assert alive(duplicate)
    finally:
        private_redis.client().execute_command("CLIENT", "UNPAUSE")
        worker.kill_group()
