"""The heartbeat speaks only for the process that started the run: a duplicate delivery of the
same message (refused by the start check) must neither renew the lease nor get killed for it."""

from __future__ import annotations

import os

import pytest
import redis

from tests.support.api import store_of, trigger
from web import create_app
from worker.core.lua import Beat, BeatVerdict, Started
from worker.core.status import ErrorType, ReleaseReason, RunStatus

pytestmark = pytest.mark.cluster_tracking


def test_heartbeat_renews_only_for_the_starting_process(config, redis_client):
    app = create_app(dict(config, TEST_RUN_HEARTBEAT_TTL="20"))
    store = app.extensions["testruns"].store
    rid = trigger(app.test_client(), "echo")["run_id"]
    assert isinstance(store.start(rid, "w1@host"), Started)  # records this process's pid
    slot = store.keys.slot("echo")

    assert store.heartbeat(rid, "w1@host", os.getpid()) == Beat(BeatVerdict.RENEWED)
    assert 19_000 < redis_client.pttl(slot) <= 20_000

    redis_client.pexpire(slot, 5_000)
    assert store.heartbeat(rid, "w2@host", os.getpid()).verdict is BeatVerdict.NOT_OURS
    assert store.heartbeat(rid, "w1@host", os.getpid() + 1).verdict is BeatVerdict.NOT_OURS
    assert redis_client.pttl(slot) <= 5_000  # not renewed by a stranger

    store.cancel(rid)
    assert store.heartbeat(rid, "w2@host", 1).verdict is BeatVerdict.NOT_OURS  # not killed
    assert store.heartbeat(rid, "w1@host", os.getpid()) == Beat(BeatVerdict.TERMINAL,
                                                                RunStatus.CANCELLED)


def test_heartbeat_after_redis_lost_the_record_restores_it_and_the_slot(config, redis_client):
    app = create_app(dict(config, TEST_RUN_HEARTBEAT_TTL="20"))
    store = app.extensions["testruns"].store
    rid = trigger(app.test_client(), "echo")["run_id"]
    assert isinstance(store.start(rid, "w1@host"), Started)
    k = store.keys
    redis_client.delete(k.slot("echo"), k.run("echo", rid))  # as an empty restart would

    assert store.heartbeat(rid, "w1@host", os.getpid()) == Beat(BeatVerdict.REACQUIRED)
    assert redis_client.get(k.slot("echo")) == rid
    run = store.get(rid)
    assert run is not None and run.status is RunStatus.RUNNING and run.record_lost


def test_a_stranger_that_writes_back_a_lost_record_cannot_keep_the_slot(
        config: dict[str, str], redis_client: redis.Redis) -> None:
    """start in process A → Redis loses the record → a heartbeat from process B (a refused
    duplicate delivery still active) writes the record back naming B → A's heartbeat was
    told NOT_OURS: A's body went on executing with nobody renewing its lease or stopping it,
    while B kept the slot alive. Now the second claimant ends the run lost and frees the slot,
    and both processes are told TERMINAL lost (so their worker stops them)."""
    store = store_of(config, TEST_RUN_HEARTBEAT_TTL="20")
    rid = store.admit("echo", {}).run_id
    assert isinstance(store.start(rid, "w1@host", pid=101), Started)
    redis_client.delete(store.keys.run("echo", rid))

    assert store.heartbeat(rid, "w2@host", 201) == Beat(BeatVerdict.RENEWED)  # writes it back
    assert store.heartbeat(rid, "w1@host", 101) == Beat(BeatVerdict.TERMINAL, RunStatus.LOST)
    assert store.holders(["echo"]) == {"echo": None}
    run = store.get(rid)
    assert run is not None and run.record_lost
    assert (run.status, run.error_type, run.release_reason) == (
        RunStatus.LOST, ErrorType.HEARTBEAT_LOST, ReleaseReason.LEASE_EXPIRED)
    # both claimants hear the same, however often they ask; nothing takes the slot back
    assert store.heartbeat(rid, "w2@host", 201) == Beat(BeatVerdict.TERMINAL, RunStatus.LOST)
    assert store.heartbeat(rid, "w1@host", 101) == Beat(BeatVerdict.TERMINAL, RunStatus.LOST)
    assert store.holders(["echo"]) == {"echo": None}


def test_the_owner_alone_still_gets_a_lost_record_and_its_slot_back(
        config: dict[str, str], redis_client: redis.Redis) -> None:
    """The fix above must not touch the usual empty-restart path: one process, its record
    written back, its lease renewed."""
    store = store_of(config, TEST_RUN_HEARTBEAT_TTL="20")
    rid = store.admit("echo", {}).run_id
    assert isinstance(store.start(rid, "w1@host", pid=101), Started)
    k = store.keys
    redis_client.delete(k.run("echo", rid), k.slot("echo"))
    assert store.heartbeat(rid, "w1@host", 101) == Beat(BeatVerdict.REACQUIRED)
    assert store.heartbeat(rid, "w1@host", 101) == Beat(BeatVerdict.RENEWED)
    run = store.get(rid)
    assert run is not None and run.status is RunStatus.RUNNING and run.record_lost
