"""Every key a script touches is declared in KEYS (declare.lua, worker/core/lua/base.py): each
script runs behind a check that fails on an undeclared key (tests/support/declared_keys.py),
through the paths where a script learns a key by reading — and those paths still do their work,
in one more call at most."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

from tests.support.api import store_of
from tests.support.declared_keys import checking
from tests.support.procs import wait_for
from worker.core.lua import Admitted, BeatVerdict, Busy, Started
from worker.core.lua.base import needs_keys
from worker.core.status import ConflictPolicy, ReleaseReason, RunStatus, WebhookTarget


@pytest.fixture
def strict(config, monkeypatch):
    checking(monkeypatch, config["TEST_RUN_KEY_PREFIX"])
    return store_of(config)


def test_the_check_catches_a_key_built_inside_a_script(config, monkeypatch, redis_client):
    """The instrument works: a script that builds a key name it did not declare fails."""
    checked = checking(monkeypatch, config["TEST_RUN_KEY_PREFIX"])
    script = redis_client.register_script(checked("workers").replace(
        "local online, info_prefix = KEYS[1], ARGV[1]",
        "local online, info_prefix = KEYS[1], ARGV[1]\n"
        "redis.call('GET', info_prefix .. 'x')"))
    with pytest.raises(redis.ResponseError, match="undeclared key"):
        script(keys=[config["TEST_RUN_KEY_PREFIX"] + ":{_workers}:queue:q"],
               args=[config["TEST_RUN_KEY_PREFIX"] + ":{_workers}:info:", "0"])


def test_the_workers_list_asks_for_each_workers_details(strict, redis_client):
    keys, queue = strict.keys, strict.settings.queue
    for host in ("w1@a", "w2@b"):
        strict.connection.scripts.advertise(keys, queue, host, ttl_ms=10_000,
                                            info={"pid": "1"})
    raw = strict.connection.scripts.workers._script(
        keys=[keys.workers(queue)], args=[keys.worker_info_prefix(), "1"])
    assert needs_keys(raw) and sorted(raw[1:]) == sorted(
        keys.worker_info_prefix() + h for h in ("w1@a", "w2@b"))
    listed = strict.connection.scripts.workers.list(keys, queue)
    assert sorted(w.hostname for w in listed) == ["w1@a", "w2@b"]
    assert all(w.info.get("pid") == "1" for w in listed)
    assert strict.connection.scripts.workers.count(keys, queue) == 2


def test_the_webhook_claim_asks_for_each_due_delivery(strict):
    keys, scripts = strict.keys, strict.connection.scripts
    ids = [f"d{i}-{secrets.token_hex(3)}" for i in range(3)]
    for wid in ids:
        assert scripts.webhook_schedule(keys, wid, "echo-1", WebhookTarget.WEBHOOK_URL,
                                        "https://example.invalid/hook", token="t",
                                        lease_ms=1, retention_s=60)
    claimed: list[tuple[str, str]] = []
    # the schedules' own claims lapse after 1 ms: claimed again, each once, by the sweeps
    wait_for(lambda: claimed.extend(scripts.webhook_claim(
        keys, lease_ms=60_000, limit=10, token="sweep")) or len(claimed) == len(ids), 5,
        "the deliveries to fall due")
    assert sorted(wid for wid, _ in claimed) == sorted(ids)
    assert scripts.webhook_claim(keys, lease_ms=60_000, limit=10, token="again") == []


def test_on_one_redis_a_script_asks_for_nothing(config):
    """Declaring is for a cluster: on one Redis the first call answers (no second round trip
    on the request path), a key of the script's own hash tag built inside it."""
    store = store_of(config)
    keys, queue = store.keys, store.settings.queue
    store.connection.scripts.advertise(keys, queue, "w1@a", ttl_ms=10_000, info={"pid": "1"})
    assert not store.connection.scripts.workers.declare_keys
    raw = store.connection.scripts.workers._script(
        keys=[keys.workers(queue)], args=[keys.worker_info_prefix(), "1"])
    assert not needs_keys(raw) and raw[1][0] == "w1@a"


def declaring_store(config, monkeypatch, **overrides):
    checking(monkeypatch, config["TEST_RUN_KEY_PREFIX"])
    return store_of(config, **overrides)


def test_a_runs_life_declares_every_key(config, monkeypatch):
    """Admit, start, renew, log, read, finish, list: every key in KEYS (the outbox included)."""
    store = declaring_store(config, monkeypatch)
    admitted = store.admit("echo", {"a": 1})
    assert isinstance(admitted, Admitted)
    assert isinstance(store.start(admitted.run_id, "w@h", pid=1), Started)
    assert store.heartbeat(admitted.run_id, "w@h", 1).verdict is BeatVerdict.RENEWED
    store.append_log(admitted.run_id, "a line")
    assert store.finish(admitted.run_id, RunStatus.SUCCEEDED, result={"ok": 1})
    assert store.get(admitted.run_id).status is RunStatus.SUCCEEDED
    assert [r.run_id for r in store.list_runs("echo", 10)] == [admitted.run_id]


def test_a_conflict_a_replace_and_a_reclaim_ask_for_the_holders_keys(config, monkeypatch,
                                                                     redis_client):
    store = declaring_store(config, monkeypatch)
    first = store.admit("echo", {})
    assert isinstance(store.admit("echo", {}), Busy)
    second = store.admit("echo", {}, on_conflict=ConflictPolicy.REPLACE)
    assert isinstance(second, Admitted) and second.previous_holder == first.run_id
    assert store.get(first.run_id).status is RunStatus.CANCELLED
    # a holder whose record ended while it kept the slot (a missed release): reclaimed
    redis_client.hset(store.keys.run("echo", second.run_id), "status", RunStatus.FAILED.value)
    third = store.admit("echo", {})
    assert isinstance(third, Admitted)
    assert third.previous_release is ReleaseReason.RECLAIMED


def test_the_bound_asks_for_the_keys_of_the_runs_it_deletes(config, monkeypatch, redis_client):
    store = declaring_store(config, monkeypatch, TEST_RUN_MAX_RUNS_PER_WORKFLOW="2")
    ids = []
    for i in range(5):
        admitted = store.admit("echo", {"i": i}, idempotency_key=f"k{i}")
        assert isinstance(admitted, Admitted), admitted
        ids.append(admitted.run_id)
        store.force_release("echo", expected=admitted.run_id)
    keys = store.keys
    assert redis_client.zrange(keys.index("echo"), 0, -1) == ids[-2:]
    for old in ids[:-2]:
        assert not redis_client.exists(keys.run("echo", old), keys.events("echo", old))
    assert not redis_client.exists(keys.idempotency("echo", "k0"))
    assert redis_client.get(keys.idempotency("echo", "k4")) == ids[-1]


def test_a_forced_release_and_a_lapsed_lease_declare_the_holder_and_the_outbox(
        config, monkeypatch, redis_client):
    store = declaring_store(config, monkeypatch)
    live = store.admit("echo", {})
    assert store.force_release("echo") == live.run_id
    assert store.get(live.run_id).status is RunStatus.CANCELLED
    lapsing = store.admit("probe", {})
    redis_client.delete(store.keys.slot("probe"))  # its lease ran out
    assert store.get(lapsing.run_id).status is RunStatus.EXPIRED
    ended = redis_client.zrange(store.keys.outbox("probe"), 0, -1)
    assert lapsing.run_id in ended


def test_fifty_queue_triggers_and_the_holders_end_at_once_all_go_through(config, monkeypatch,
                                                                        redis_client):
    """Declared keys under contention: each queue trigger supersedes the pending run it read,
    so every one that wins changes the keys all the others need, and a call may have to be
    repeated about once per trigger racing it (25 calls for 50, measured on a cluster). Each
    repeat means another call won: the wrapper keeps calling (backing off) rather than giving
    up after a fixed few — which answered 29 of 50 triggers 503 on a Redis Cluster, and would
    fail the holder's own ending (finish.lua asks for the pending run's keys too), leaving it
    to end `lost` with its lease."""
    store = declaring_store(config, monkeypatch)
    holder = store.admit("echo", {"n": 0})
    assert isinstance(holder, Admitted)
    assert isinstance(store.start(holder.run_id, "w@h", pid=1), Started)
    barrier = threading.Barrier(51)

    def trigger(n: int) -> Any:
        barrier.wait(timeout=30)
        if n == 50:  # the holder's worker records its ending in the middle of the storm
            return store.finish(holder.run_id, RunStatus.SUCCEEDED, result={})
        return store.admit("echo", {"n": n}, on_conflict=ConflictPolicy.QUEUE)

    with ThreadPoolExecutor(51) as pool:
        *answers, finished = list(pool.map(trigger, range(51)))
    assert finished is True
    assert all(isinstance(a, Admitted) for a in answers), answers
    statuses = Counter(store.get(a.run_id).status for a in answers)
    # the ending promoted the pending run of its moment; the triggers after it took the slot
    # or waited behind it: one holds the slot, at most one waits, the rest were superseded
    assert statuses[RunStatus.SUPERSEDED] >= 48, statuses
    assert statuses[RunStatus.QUEUED] == 1 and statuses[RunStatus.PENDING] <= 1, statuses
    assert redis_client.get(store.keys.slot("echo")) in {a.run_id for a in answers}
