"""Chaos with a pending run (on_conflict=queue) waiting behind a running one: its worker is
SIGKILLed — the lease frees the slot, a live worker's heartbeat promotes the pending run, and
it runs (after the killed body, never beside it); Redis restarts empty — nothing is left
waiting for a slot that no longer exists."""

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
from web import create_app
from worker.core.status import RunStatus

pytestmark = [pytest.mark.broker_matrix, pytest.mark.cluster_tracking]

HEARTBEAT_TTL = 3.0
QUEUE = {"on_conflict": "queue"}


def test_a_worker_sigkilled_while_a_run_waits_pending_lets_it_run(config, redis_client):
    config = dict(config, TEST_RUN_HEARTBEAT_TTL=str(HEARTBEAT_TTL), TEST_RUN_TIME_LIMIT="60",
                  TEST_RUN_SOFT_TIME_LIMIT="50")
    client = create_app(config).test_client()
    doomed = Worker(config, concurrency=1).wait_ready()
    survivor: Worker | None = None
    try:
        first = trigger(client, "probe", {"mode": "sleep", "seconds": 30})["run_id"]
        wait_for(lambda: body_events(redis_client, config, first), 15, "the body to start")
        body_pid = body_events(redis_client, config, first)[0]["pid"]
        waiting = trigger(client, "probe", {"mode": "succeed"}, query_string=QUEUE)
        assert waiting["status"] == RunStatus.PENDING
        # a second worker, busy with nothing: the one whose heartbeat will do the upkeep
        survivor = Worker(config, concurrency=1).wait_ready()
        killed_at = time.time()
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait_exit(10)
        wait_for(lambda: not alive(body_pid), 10, "the orphaned body to die")
        done = wait_terminal(client, waiting["run_id"], timeout=HEARTBEAT_TTL * 4 + 10)
        assert done["status"] == RunStatus.SUCCEEDED and done["promoted_at"] is not None
        print(f"\nworker killed → pending run promoted {ts(done['promoted_at']) - killed_at:.2f}s"
              f" (TTL {HEARTBEAT_TTL:g}s)")
        assert ts(done["promoted_at"]) - killed_at <= HEARTBEAT_TTL + HEARTBEAT_TTL / 3 + 2
        (started,) = [e for e in body_events(redis_client, config, waiting["run_id"])
                      if e["event"] == "start"]
        assert started["t"] >= killed_at  # never beside the killed body
        assert run_of(client, first)["status"] == RunStatus.LOST
        assert active_run_id(client, "probe") is None
    finally:
        doomed.kill_group()
        if survivor is not None:
            survivor.kill_group()


def test_redis_restarted_empty_leaves_nothing_waiting(config, restartable_tracking):
    away = restartable_tracking.outage_s  # the running run ends after the outage
    config = dict(config, **restartable_tracking.settings(),
                  TEST_RUN_HEARTBEAT_TTL=str(restartable_tracking.heartbeat_ttl),
                  TEST_RUN_TIME_LIMIT=str(6 + away), TEST_RUN_SOFT_TIME_LIMIT=str(5 + away))
    client = create_app(config).test_client()
    worker = Worker(config, concurrency=2).wait_ready()
    try:
        first = trigger(client, "probe", {"mode": "sleep", "seconds": 3 + away})["run_id"]
        wait_status(client, first, RunStatus.RUNNING)
        waiting = trigger(client, "probe", {"mode": "succeed"}, query_string=QUEUE)["run_id"]
        restartable_tracking.restart_empty()  # the pending pointer and record go with the rest

        # the running run is written back by its worker and ends; the pending one is gone
        # (404), never started, and nothing is left waiting for a slot
        ended = wait_for(lambda: (lambda r: r.get_json() if r.status_code == 200 and
                                  r.get_json()["status"] != RunStatus.RUNNING else None)(
            client.get(f"/api/test-runs/{first}")), 20, "the running run to be recorded")
        assert ended["record_lost"] is True and ended["status"] == RunStatus.SUCCEEDED
        wait_for(lambda: active_run_id(client, "probe") is None, 10, "the slot to be free")
        assert client.get(f"/api/test-runs/{waiting}").status_code == 404
        state = client.get("/api/workflows/probe").get_json()
        assert state["pending_run_id"] is None
        keys = restartable_tracking.keys("*waiting*")
        assert keys == []
        # and the workflow takes the next trigger at once
        after = trigger(client, "probe", {"mode": "succeed"})
        assert after["status"] == RunStatus.QUEUED
        assert wait_terminal(client, after["run_id"])["status"] == RunStatus.SUCCEEDED
    finally:
        worker.kill_group()
