"""Every run ending raises `finished` exactly once — also the endings a Lua script settles on
its own (a lapsed lease found by a read or a cancel, a start past its queue time, a heartbeat
that finds its slot taken, a replace, an operator's release) — and every slot freed raises
`released` with its reason. These are what the metrics count, so a miss or a double here is a
wrong number on a dashboard. No worker: the store is driven directly, on a private prefix."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.api import expect_status, keys_of, trigger
from tests.support.procs import wait_for
from worker.core.lifecycle import LifecycleHooks, lifecycle
from worker.core.lua import Refused
from worker.core.settings import Settings
from worker.core.status import ConflictPolicy, ErrorType, ReleaseReason, RunStatus
from worker.core.store import RunStore

pytestmark = pytest.mark.cluster_tracking


class Recorder(LifecycleHooks):
    def __init__(self) -> None:
        self.finished_: list[tuple[str, RunStatus, ErrorType | None, float | None]] = []
        self.released_: list[tuple[str, ReleaseReason]] = []

    def finished(self, run_id: str, workflow_id: str, status: RunStatus,
                 error_type: ErrorType | None, *, duration_s: float | None = None) -> None:
        self.finished_.append((run_id, status, error_type, duration_s))

    def released(self, run_id: str, workflow_id: str, reason: ReleaseReason) -> None:
        self.released_.append((run_id, reason))

    def endings(self) -> list[tuple[str, RunStatus, ErrorType | None]]:
        return [(r, s, e) for r, s, e, _ in self.finished_]


@pytest.fixture
def heard() -> Iterator[Recorder]:
    recorder = Recorder()
    lifecycle.subscribe(recorder)
    yield recorder
    lifecycle.unsubscribe(recorder)


@pytest.fixture
def store(idle_app: Any) -> RunStore:
    return idle_app.extensions["testruns"].store


def lapse(store: RunStore, config: dict[str, str], workflow_id: str) -> None:
    """The slot's lease runs out (its key vanishes), as when a worker dies."""
    store.connection.redis.delete(keys_of(config).slot(workflow_id))


def test_a_read_that_finds_a_lapsed_queued_lease_ends_the_run_once(idle_client, store, config,
                                                                    heard):
    run_id = trigger(idle_client, "echo")["run_id"]
    lapse(store, config, "echo")
    for _ in range(2):  # the second read finds it ended: nothing more
        run = expect_status(idle_client.get(f"/api/test-runs/{run_id}"), 200)
        assert run["status"] == RunStatus.EXPIRED.value
    assert heard.endings() == [(run_id, RunStatus.EXPIRED, ErrorType.QUEUE_TIMEOUT)]
    assert heard.released_ == [(run_id, ReleaseReason.LEASE_EXPIRED)]


def test_a_cancel_that_finds_a_lapsed_lease_counts_that_ending_not_a_cancel(
        idle_client, store, config, heard):
    run_id = trigger(idle_client, "echo")["run_id"]
    lapse(store, config, "echo")
    expect_status(idle_client.post(f"/api/test-runs/{run_id}/cancel"), 409)
    assert heard.endings() == [(run_id, RunStatus.EXPIRED, ErrorType.QUEUE_TIMEOUT)]
    assert heard.released_ == [(run_id, ReleaseReason.LEASE_EXPIRED)]


def test_a_start_past_its_queue_time_ends_the_run_once(idle_client, config, heard):
    run_id = trigger(idle_client, "echo")["run_id"]
    late = RunStore(Settings.from_env(overrides={**config, "TEST_RUN_QUEUE_TIMEOUT": "0.001"}))
    first = late.start(run_id, "w@test")
    assert first == Refused(RunStatus.EXPIRED, ReleaseReason.EXPIRED)
    assert late.start(run_id, "w@test") == Refused(RunStatus.EXPIRED, None)  # a redelivery
    assert heard.endings() == [(run_id, RunStatus.EXPIRED, ErrorType.QUEUE_TIMEOUT)]
    assert heard.released_ == [(run_id, ReleaseReason.EXPIRED)]


def test_a_read_that_finds_a_running_run_lapsed_records_lost_with_its_duration(
        idle_client, store, config, heard):
    run_id = trigger(idle_client, "echo")["run_id"]
    store.start(run_id, "w@test")
    lapse(store, config, "echo")
    assert expect_status(idle_client.get(f"/api/test-runs/{run_id}"), 200)["status"] == \
        RunStatus.LOST.value
    assert heard.endings() == [(run_id, RunStatus.LOST, ErrorType.HEARTBEAT_LOST)]
    assert heard.finished_[0][3] is not None and heard.finished_[0][3] >= 0
    assert heard.released_ == [(run_id, ReleaseReason.LEASE_EXPIRED)]


def test_a_heartbeat_that_finds_its_slot_taken_ends_the_run_once(idle_client, store, config,
                                                                  heard):
    old = trigger(idle_client, "echo")["run_id"]
    store.start(old, "w@test")
    lapse(store, config, "echo")
    new = trigger(idle_client, "echo")["run_id"]  # takes the free slot
    for _ in range(2):
        beat = store.heartbeat(old, "w@test", os.getpid())
        assert beat.status is RunStatus.LOST
    assert heard.endings() == [(old, RunStatus.LOST, ErrorType.HEARTBEAT_LOST)]
    assert heard.released_ == []  # the slot it lost was freed by its lease, then taken by new
    assert store.holders(["echo"])["echo"] == new


def test_a_pending_run_past_its_timeout_when_the_slot_frees_ends_expired_once(
        idle_client, store, config, heard):
    """release() ends a pending run that waited too long instead of promoting it: that ending
    is counted like the others (the script hands it back beside its reply)."""
    holder = trigger(idle_client, "echo")["run_id"]
    brief = RunStore(Settings.from_env(overrides={**config, "TEST_RUN_PENDING_TIMEOUT": "0.05"}))
    pending = brief.admit("echo", {}, on_conflict=ConflictPolicy.QUEUE).run_id
    until = int(store.connection.redis.hget(keys_of(config).run("echo", pending),
                                            "pending_until_ms"))
    wait_for(lambda: time.time() * 1000 > until + 5, 5, "the pending timeout to pass")
    store.start(holder, "w@test")
    store.finish(holder, RunStatus.SUCCEEDED)
    assert store.holders(["echo"]) == {"echo": None}  # nothing promoted into it
    for _ in range(2):  # a read and the heartbeat's upkeep find it ended: nothing more
        assert store.get(pending).status is RunStatus.EXPIRED
        store.upkeep(["echo"])
    assert sorted(heard.endings()) == sorted([
        (holder, RunStatus.SUCCEEDED, None),
        (pending, RunStatus.EXPIRED, ErrorType.PENDING_TIMEOUT)])


def test_a_replace_and_an_operator_release_each_end_their_holder_once(idle_client, store,
                                                                       heard):
    first = trigger(idle_client, "echo")["run_id"]
    second = trigger(idle_client, "echo", query_string={"on_conflict": "replace"})["run_id"]
    assert store.force_release("echo") == second
    assert store.force_release("echo") is None  # nothing left to free
    assert heard.endings() == [(first, RunStatus.CANCELLED, ErrorType.CANCELLED),
                               (second, RunStatus.CANCELLED, ErrorType.CANCELLED)]
    assert heard.released_ == [(first, ReleaseReason.REPLACED), (second, ReleaseReason.FORCED)]


def test_a_replace_and_an_operator_release_of_running_runs_observe_their_duration(
        idle_client, store, heard):
    """run_duration is observed for every ending of a run that started: replaced and
    force-released ones too (their scripts say when it started)."""
    first = trigger(idle_client, "echo")["run_id"]
    store.start(first, "w@test")
    second = trigger(idle_client, "echo", query_string={"on_conflict": "replace"})["run_id"]
    # the first had a body: the second is pending until its worker confirms the body stopped
    assert store.get(second).status is RunStatus.PENDING
    assert store.finish(first, RunStatus.CANCELLED, error_type=ErrorType.CANCELLED) is False
    assert store.holders(["echo"]) == {"echo": second}  # promoted by that release
    # counted under why the body was stopped, as its record says (not the outcome's reason)
    assert heard.released_ == [(first, ReleaseReason.REPLACED)]
    assert store.get(first).release_reason is ReleaseReason.REPLACED
    store.start(second, "w@test")
    assert store.force_release("echo") == second
    durations = {run_id: duration for run_id, _, _, duration in heard.finished_}
    assert set(durations) == {first, second}
    assert all(d is not None and 0 <= d < 5 for d in durations.values()), durations
    # a holder replaced or released while still queued never started: no duration
    third = trigger(idle_client, "echo")["run_id"]
    fourth = trigger(idle_client, "echo", query_string={"on_conflict": "replace"})["run_id"]
    assert store.force_release("echo") == fourth
    assert [d for r, _, _, d in heard.finished_ if r in (third, fourth)] == [None, None]
