"""The counterexamples the slot state machine (tests/model/) found, each shrunk to its steps
and kept as a plain test beside the fix, so it stays fixed whatever the model's settings."""

from __future__ import annotations

import redis

from worker.core.lua import AlreadyAdmitted, Beat, BeatVerdict, Started
from worker.core.settings import Settings
from worker.core.status import ConflictPolicy, ErrorType, ReleaseReason, RunStatus
from worker.core.store import RunStore


def _store(config: dict[str, str]) -> RunStore:
    return RunStore(Settings.from_env(overrides=dict(config, TEST_RUN_HEARTBEAT_TTL="20")))


def test_a_repeated_admission_after_its_run_was_cancelled_answers_that_run(
        config: dict[str, str]) -> None:
    """admit → cancel → the same admit again (its reply was late; the client retried): it
    answered CONFLICT naming a newer run, or — with the slot free — admitted the cancelled
    run a second time over its terminal record. Now it answers EXISTING with the run it
    admitted, and writes nothing."""
    store = _store(config)
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


def test_a_stranger_that_writes_back_a_lost_record_cannot_keep_the_slot(
        config: dict[str, str], redis_client: redis.Redis) -> None:
    """start in process A → Redis loses the record → a heartbeat from process B (a refused
    duplicate delivery still active) writes the record back naming B → A's heartbeat was
    told NOT_OURS: A's body went on executing with nobody renewing its lease or stopping it,
    while B kept the slot alive. Now the second claimant ends the run lost and frees the slot,
    and both processes are told TERMINAL lost (so their worker stops them)."""
    store = _store(config)
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
    store = _store(config)
    rid = store.admit("echo", {}).run_id
    assert isinstance(store.start(rid, "w1@host", pid=101), Started)
    k = store.keys
    redis_client.delete(k.run("echo", rid), k.slot("echo"))
    assert store.heartbeat(rid, "w1@host", 101) == Beat(BeatVerdict.REACQUIRED)
    assert store.heartbeat(rid, "w1@host", 101) == Beat(BeatVerdict.RENEWED)
    run = store.get(rid)
    assert run is not None and run.status is RunStatus.RUNNING and run.record_lost


def test_a_foreign_host_is_refused_before_the_token_is_checked(
        config: dict[str, str]) -> None:
    """A trigger with a foreign Host and a wrong token answered 401: Flask raises its
    TRUSTED_HOSTS error only at dispatch, after the auth hook. The Host check comes first."""
    from web import create_app

    client = create_app(dict(config, API_TOKEN="t0ken")).test_client()
    for auth in ({"Authorization": "Bearer wrong"}, {}):
        resp = client.post("/api/workflows/echo/test-runs", json={},
                           headers={"Host": "evil.example", **auth})
        assert resp.status_code == 400 and resp.get_json()["error"] == "host_not_allowed"
        resp = client.get("/api/workflows", headers={"Host": "evil.example", **auth})
        assert resp.status_code == 400 and resp.get_json()["error"] == "host_not_allowed"
    assert client.post("/api/workflows/echo/test-runs", json={},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
