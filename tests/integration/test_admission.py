"""Admission beyond the plain trigger: idempotency keys, on_conflict=replace, reclaiming a slot
whose holder already ended (a missed signal), release accounting and the queued lease.

The tests use `idle_client` (no worker consumes its queue, so runs stay queued) and write the
Redis state a lost signal would leave behind directly."""

from __future__ import annotations

import pytest

from tests.support.api import active_run_id, expect_status, keys_of, parse_time, run_of, trigger
from web import create_app
from worker.core.keys import new_run_id
from worker.core.status import ErrorType, ReleaseReason, RunStatus

pytestmark = pytest.mark.cluster_tracking

TRIGGER = "/api/workflows/{}/test-runs"


def post(client, workflow_id: str, *, key: str | None = None, on_conflict: str | None = None,
         input: dict | None = None):
    path = TRIGGER.format(workflow_id)
    if on_conflict is not None:
        path += f"?on_conflict={on_conflict}"
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(path, json={"input": input or {}}, headers=headers)


# -- Idempotency-Key ---------------------------------------------------------------------------

def test_retried_request_with_the_same_key_returns_the_same_run_with_200(idle_client):
    first = post(idle_client, "echo", key="retry-1", input={"n": 1})
    run = expect_status(first, 202)
    again = post(idle_client, "echo", key="retry-1", input={"n": 1})
    same = expect_status(again, 200)  # not 409: it is the holder itself
    assert same["run_id"] == run["run_id"]
    assert same["status"] == RunStatus.QUEUED and same["input"] == {"n": 1}
    assert again.headers["Location"] == f"/api/test-runs/{run['run_id']}"
    # the retry admitted nothing: one run, and it still holds the slot
    runs = idle_client.get(TRIGGER.format("echo")).get_json()["runs"]
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    assert active_run_id(idle_client, "echo") == run["run_id"]


def test_a_different_key_while_the_first_run_holds_the_slot_is_409(idle_client):
    run = expect_status(post(idle_client, "echo", key="key-a"), 202)
    body = expect_status(post(idle_client, "echo", key="key-b"), 409)
    assert body["error"] == "test_run_in_progress"
    assert body["run_id"] == run["run_id"]
    # and the first key still answers with its own run
    assert expect_status(post(idle_client, "echo", key="key-a"), 200)["run_id"] == run["run_id"]


def test_keys_are_scoped_per_workflow(idle_client):
    echo = expect_status(post(idle_client, "echo", key="shared"), 202)
    other = expect_status(post(idle_client, "sleep", key="shared"), 202)
    assert other["run_id"] != echo["run_id"]
    assert other["workflow_id"] == "sleep" and echo["workflow_id"] == "echo"
    assert active_run_id(idle_client, "sleep") == other["run_id"]
    assert active_run_id(idle_client, "echo") == echo["run_id"]


def test_the_key_is_kept_for_the_retention_period(config, redis_client):
    client = create_app(dict(config, TEST_RUN_RETENTION="900")).test_client()
    run = expect_status(post(client, "echo", key="ttl-key"), 202)
    idem = keys_of(config).idempotency("echo", "ttl-key")
    assert redis_client.get(idem) == run["run_id"]
    ttl = redis_client.ttl(idem)
    assert 890 <= ttl <= 900, ttl


def test_the_default_retention_applies_to_the_key(idle_client, config, redis_client):
    expect_status(post(idle_client, "echo", key="ttl-default"), 202)
    ttl = redis_client.ttl(keys_of(config).idempotency("echo", "ttl-default"))
    assert 7 * 24 * 3600 - 10 <= ttl <= 7 * 24 * 3600, ttl


def test_a_request_without_a_key_stores_no_key(idle_client, config, redis_client):
    run = trigger(idle_client, "echo")
    idle_client.post(f"/api/test-runs/{run['run_id']}/cancel")
    assert list(redis_client.scan_iter(match=keys_of(config).idempotency("echo", "*"))) == []


def test_a_key_returns_its_run_even_after_the_run_ended(idle_client):
    run = expect_status(post(idle_client, "echo", key="ended"), 202)
    assert idle_client.post(f"/api/test-runs/{run['run_id']}/cancel").status_code == 202
    again = expect_status(post(idle_client, "echo", key="ended"), 200)
    assert again["run_id"] == run["run_id"] and again["status"] == RunStatus.CANCELLED
    assert active_run_id(idle_client, "echo") is None  # the retry took no slot


def test_a_retried_replace_does_not_replace_again(idle_client):
    holder = trigger(idle_client, "echo")
    new = expect_status(post(idle_client, "echo", key="rep", on_conflict="replace"), 202)
    retry = expect_status(post(idle_client, "echo", key="rep", on_conflict="replace"), 200)
    assert retry["run_id"] == new["run_id"] and retry["status"] == RunStatus.QUEUED
    assert run_of(idle_client, new["run_id"])["status"] == RunStatus.QUEUED
    assert run_of(idle_client, holder["run_id"])["status"] == RunStatus.CANCELLED
    assert active_run_id(idle_client, "echo") == new["run_id"]


# -- on_conflict -------------------------------------------------------------------------------

def test_replace_cancels_a_queued_holder_and_admits_the_new_run(idle_client, config,
                                                                redis_client):
    old = trigger(idle_client, "echo", {"v": "old"})
    resp = post(idle_client, "echo", on_conflict="replace", input={"v": "new"})
    new = expect_status(resp, 202)
    assert new["run_id"] != old["run_id"]
    assert new["status"] == RunStatus.QUEUED and new["input"] == {"v": "new"}

    replaced = run_of(idle_client, old["run_id"])
    assert replaced["status"] == RunStatus.CANCELLED
    assert replaced["error_type"] == ErrorType.CANCELLED
    assert replaced["release_reason"] == ReleaseReason.REPLACED
    assert new["run_id"] in replaced["error"]
    assert replaced["released_at"] is not None and replaced["finished_at"] is not None
    assert active_run_id(idle_client, "echo") == new["run_id"]
    assert redis_client.get(keys_of(config).slot("echo")) == new["run_id"]


def test_replace_with_a_free_slot_just_admits(idle_client):
    run = expect_status(post(idle_client, "echo", on_conflict="replace"), 202)
    assert active_run_id(idle_client, "echo") == run["run_id"]
    assert run_of(idle_client, run["run_id"])["release_reason"] is None


def test_explicit_reject_is_409_and_leaves_the_holder(idle_client):
    holder = trigger(idle_client, "echo")
    body = expect_status(post(idle_client, "echo", on_conflict="reject"), 409)
    assert body["error"] == "test_run_in_progress" and body["run_id"] == holder["run_id"]
    assert run_of(idle_client, holder["run_id"])["status"] == RunStatus.QUEUED
    assert active_run_id(idle_client, "echo") == holder["run_id"]


# -- reclaim on proof of death -----------------------------------------------------------------

def test_a_holder_that_already_ended_is_reclaimed_by_the_next_trigger(idle_client, config,
                                                                      redis_client):
    k = keys_of(config)
    old = trigger(idle_client, "echo")
    # a missed signal: the record says the run ended, but nobody freed the slot
    redis_client.hset(k.run("echo", old["run_id"]), "status", RunStatus.FAILED)
    assert redis_client.get(k.slot("echo")) == old["run_id"]

    new = trigger(idle_client, "echo", expect=202)
    assert new["run_id"] != old["run_id"]
    reclaimed = run_of(idle_client, old["run_id"])
    assert reclaimed["status"] == RunStatus.FAILED  # a terminal status never changes
    assert reclaimed["release_reason"] == ReleaseReason.RECLAIMED
    assert reclaimed["released_at"] is not None
    assert redis_client.get(k.slot("echo")) == new["run_id"]


def test_a_slot_whose_holder_record_is_gone_is_reclaimed(idle_client, config, redis_client):
    k = keys_of(config)
    ghost = new_run_id("echo")
    redis_client.set(k.slot("echo"), ghost, px=60_000)
    assert active_run_id(idle_client, "echo") == ghost

    new = trigger(idle_client, "echo", expect=202)
    assert new["run_id"] != ghost
    assert redis_client.get(k.slot("echo")) == new["run_id"]
    assert not redis_client.exists(k.run("echo", ghost))  # nothing written for the ghost


def test_a_live_holder_is_not_reclaimed(idle_client, config, redis_client):
    k = keys_of(config)
    old = trigger(idle_client, "echo")
    redis_client.hset(k.run("echo", old["run_id"]), "status", RunStatus.RUNNING)
    body = expect_status(post(idle_client, "echo"), 409)
    assert body["run_id"] == old["run_id"]
    assert redis_client.get(k.slot("echo")) == old["run_id"]


# -- release accounting ------------------------------------------------------------------------

def test_a_cancelled_run_records_why_and_when_its_slot_was_freed(idle_client, config,
                                                                 redis_client):
    run = trigger(idle_client, "echo")
    assert run_of(idle_client, run["run_id"])["released_at"] is None
    resp = idle_client.post(f"/api/test-runs/{run['run_id']}/cancel")
    assert resp.status_code == 202
    done = run_of(idle_client, run["run_id"])
    assert done["status"] == RunStatus.CANCELLED
    assert done["release_reason"] == ReleaseReason.CANCELLED
    assert done["released_at"] is not None
    assert parse_time(done["released_at"]) >= parse_time(done["created_at"])
    assert not redis_client.exists(keys_of(config).slot("echo"))


def test_workflow_shows_its_active_run_while_queued(idle_client):
    run = trigger(idle_client, "echo")
    wf = idle_client.get("/api/workflows/echo").get_json()
    assert wf["active_run_id"] == run["run_id"]
    active = wf["active_run"]
    assert set(active) >= {"run_id", "status", "created_at", "last_heartbeat_at"}
    assert active["run_id"] == run["run_id"]
    assert active["status"] == RunStatus.QUEUED
    assert active["created_at"] == run["created_at"]
    assert active["last_heartbeat_at"] is None  # no worker has renewed it

    idle_client.post(f"/api/test-runs/{run['run_id']}/cancel")
    after = idle_client.get("/api/workflows/echo").get_json()
    assert after["active_run_id"] is None and "active_run" not in after


# -- queued lease ------------------------------------------------------------------------------

def test_a_queued_slot_lives_for_queue_timeout_plus_grace(idle_client, config, redis_client):
    trigger(idle_client, "echo")
    lease_ms = (float(config["TEST_RUN_QUEUE_TIMEOUT"])
                + float(config["TEST_RUN_LEASE_GRACE"])) * 1000
    pttl = redis_client.pttl(keys_of(config).slot("echo"))
    assert lease_ms - 2000 < pttl <= lease_ms, pttl


def test_an_input_over_the_limit_is_413_and_takes_no_slot(config):
    client = create_app(dict(config, TEST_RUN_MAX_INPUT_BYTES="100")).test_client()
    body = expect_status(client.post("/api/workflows/echo/test-runs",
                                     json={"input": {"x": "a" * 100}}), 413)
    assert body["error"] == "payload_too_large" and body["field"] == "input"
    assert active_run_id(client, "echo") is None
    expect_status(client.post("/api/workflows/echo/test-runs", json={"input": {"x": 1}}), 202)
