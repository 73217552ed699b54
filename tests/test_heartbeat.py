"""The heartbeat speaks only for the process that started the run: a duplicate delivery of the
same message (refused by the start check) must neither renew the lease nor get killed for it."""

from __future__ import annotations

import os

from tests.conftest import trigger
from web import create_app


def test_heartbeat_renews_only_for_the_starting_process(config, redis_client):
    app = create_app(dict(config, TEST_RUN_HEARTBEAT_TTL="20"))
    tracker = app.extensions["testruns"].tracker
    rid = trigger(app.test_client(), "echo")["run_id"]
    assert tracker.start(rid, "w1@host").started  # records this process's pid
    slot = tracker.keys.slot("echo")

    assert tracker.heartbeat(rid, "w1@host", os.getpid()) == ("renewed", None)
    assert 19_000 < redis_client.pttl(slot) <= 20_000

    redis_client.pexpire(slot, 5_000)
    assert tracker.heartbeat(rid, "w2@host", os.getpid())[0] == "not_ours"
    assert tracker.heartbeat(rid, "w1@host", os.getpid() + 1)[0] == "not_ours"
    assert redis_client.pttl(slot) <= 5_000  # not renewed by a stranger

    tracker.cancel(rid)
    assert tracker.heartbeat(rid, "w2@host", 1)[0] == "not_ours"       # not killed
    assert tracker.heartbeat(rid, "w1@host", os.getpid()) == ("terminal", "cancelled")


def test_heartbeat_after_redis_lost_the_record_restores_it_and_the_slot(config, redis_client):
    app = create_app(dict(config, TEST_RUN_HEARTBEAT_TTL="20"))
    tracker = app.extensions["testruns"].tracker
    rid = trigger(app.test_client(), "echo")["run_id"]
    assert tracker.start(rid, "w1@host").started
    k = tracker.keys
    redis_client.delete(k.slot("echo"), k.run("echo", rid))  # as an empty restart would

    assert tracker.heartbeat(rid, "w1@host", os.getpid()) == ("reacquired", None)
    assert redis_client.get(k.slot("echo")) == rid
    run = tracker.get(rid)
    assert run is not None and run.status.value == "running" and run.record_lost
