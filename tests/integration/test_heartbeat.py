"""The heartbeat speaks only for the process that started the run: a duplicate delivery of the
same message (refused by the start check) must neither renew the lease nor get killed for it."""

from __future__ import annotations

import os

from tests.support.api import trigger
from web import create_app
from worker.core.lua import Beat, BeatVerdict, Started
from worker.core.status import RunStatus


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
