"""Every script is safe to repeat: the Redis client retries once when a reply is late (the
script already ran), and that retry must answer as the first call would have."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support.api import active_run_id, store_of, trigger
from tests.support.proxy import SlowReplyProxy
from web import create_app
from worker.core.lua import AlreadyAdmitted, Started
from worker.core.status import ConflictPolicy, RunStatus


@pytest.fixture
def slow(config):
    url = urlsplit(config["REDIS_URL"])
    proxy = SlowReplyProxy((url.hostname or "127.0.0.1", url.port or 6379), delay=1.5)
    app = create_app(dict(config, REDIS_URL=f"redis://127.0.0.1:{proxy.port}/0"))
    store = app.extensions["testruns"].store
    store.connection.scripts.load()  # every script now, so no call pays a NOSCRIPT round trip
    yield proxy, app, app.test_client()
    proxy.close()


def test_admission_whose_reply_was_late_is_admitted_once(slow, redis_client, config):
    proxy, app, client = slow
    trigger(client, "echo")  # warm: connection and script loaded
    client.post(f"/api/test-runs/{active_run_id(client, 'echo')}/cancel")
    proxy.arm()
    resp = client.post("/api/workflows/echo/test-runs")
    assert resp.status_code == 202, resp.get_json()
    run_id = resp.get_json()["run_id"]
    assert active_run_id(client, "echo") == run_id
    assert len(client.get("/api/workflows/echo/test-runs").get_json()["runs"]) == 2


def test_start_whose_reply_was_late_still_starts(slow):
    proxy, app, client = slow
    store = app.extensions["testruns"].store
    run_id = trigger(client, "echo")["run_id"]
    proxy.arm()
    assert store.start(run_id, "w@host") == Started(input={})
    assert store.get(run_id).status is RunStatus.RUNNING


def test_cancel_whose_reply_was_late_answers_202(slow):
    proxy, app, client = slow
    run_id = trigger(client, "echo")["run_id"]
    proxy.arm(skip=1)  # let the cancel's read through; delay its FINISH
    resp = client.post(f"/api/test-runs/{run_id}/cancel")
    assert resp.status_code == 202 and resp.get_json()["status"] == RunStatus.CANCELLED
    assert active_run_id(client, "echo") is None


def test_a_repeated_admission_after_its_run_was_cancelled_answers_that_run(
        config: dict[str, str]) -> None:
    """admit → cancel → the same admit again (its reply was late; the client retried): it
    answered CONFLICT naming a newer run, or — with the slot free — admitted the cancelled
    run a second time over its terminal record. Now it answers EXISTING with the run it
    admitted, and writes nothing."""
    store = store_of(config, TEST_RUN_HEARTBEAT_TTL="20")
    first = store.admit("echo", {}, run_id="echo-" + "1" * 32)
    store.cancel(first.run_id)
    again = store.admit("echo", {}, run_id=first.run_id)
    assert again == AlreadyAdmitted(first.run_id)
    run = store.get(first.run_id)
    assert run is not None and run.status is RunStatus.CANCELLED
    assert store.holders(["echo"]) == {"echo": None}  # nothing taken

    newer = store.admit("echo", {})  # a newer run holds the slot: still the same answer
    assert store.admit("echo", {}, on_conflict=ConflictPolicy.REPLACE,
                       run_id=first.run_id) == AlreadyAdmitted(first.run_id)
    assert store.holders(["echo"]) == {"echo": newer.run_id}
