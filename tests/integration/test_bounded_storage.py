"""Storage stays bounded whatever callers do: at most TEST_RUN_MAX_RUNS_PER_WORKFLOW runs per
workflow (the oldest deleted, with their logs, event streams and idempotency keys, inside the
admit step); a run's log capped in bytes and lines; lists of summaries and paged logs; and the
memory bound docs/guarantees.md states (worker/core/bounds.py) checked against Redis' own
MEMORY USAGE."""

from __future__ import annotations

import pytest

from tests.support.api import expect_status, keys_of
from tests.support.procs import wait_for
from web import create_app
from worker.core import lua
from worker.core.bounds import run_bytes, run_keys
from worker.core.keys import new_run_id
from worker.core.lua import LogReply
from worker.core.settings import Settings
from worker.core.status import ConflictPolicy, ErrorType, RunStatus
from worker.core.store import RunStore

MAX_RUNS = 20


def keys_of_kind(redis_client, config, kind: str) -> list[str]:
    return list(redis_client.scan_iter(match=f"{config['TEST_RUN_KEY_PREFIX']}:{{*}}:{kind}*",
                                       count=1000))


def pipelined_replaces(store: RunStore, monkeypatch, n: int) -> tuple[list[str], list]:
    """`n` replace triggers of `echo` through the admit script, its wrapper's calls queued on
    one pipeline (seconds, not the ~2 ms each of one by one): the run ids in order, and each
    script's reply ({its reply, what it promoted, pushed}), every one checked ADMITTED."""
    admit, ids = store.connection.scripts.admit, []
    real_call = admit._call
    pipe = store.connection.redis.pipeline(transaction=False)

    def queued(script_keys, args, client=None):
        real_call(script_keys, args, pipe)
        ids.append(args[0])
        return [lua.AdmitReply.ADMITTED, args[0], "", "", "0", "", ""]  # read back below

    monkeypatch.setattr(admit, "_call", queued)
    for _ in range(n):
        store.admit("echo", {}, on_conflict=ConflictPolicy.REPLACE)
    monkeypatch.undo()
    replies = pipe.execute()
    assert {reply[0][0] for reply in replies} == {lua.AdmitReply.ADMITTED}
    return ids, replies


def test_ten_thousand_replace_triggers_leave_at_most_the_cap(config, redis_client,
                                                              monkeypatch):
    settings = Settings.from_env(overrides=dict(config, TEST_RUN_MAX_RUNS_PER_WORKFLOW=MAX_RUNS))
    store = RunStore(settings)
    # the service's own path first, with logs and idempotency keys on the runs to be deleted
    for n in range(MAX_RUNS + 30):
        admitted = store.admit("echo", {"n": n}, on_conflict=ConflictPolicy.REPLACE,
                               idempotency_key=f"key-{n}")
        assert isinstance(admitted, lua.Admitted)
        store.append_log(admitted.run_id, f"line of run {n}")
    # then 10,000 more through the same admit script, 1,000 a round trip
    keys = store.keys
    for _ in range(10):
        pipelined_replaces(store, monkeypatch, 1000)
    assert redis_client.zcard(keys.index("echo")) == MAX_RUNS
    for kind in ("run:", "logs:", "events:", "idem:"):
        assert len(keys_of_kind(redis_client, config, kind)) <= MAX_RUNS, kind
    # the newest run holds the slot and is intact; the list reads back exactly the cap
    holder = redis_client.get(keys.slot("echo"))
    assert store.get(holder).status is RunStatus.QUEUED
    assert len(store.list_runs("echo", 100)) == MAX_RUNS


def redis_ms(store: RunStore) -> int:
    seconds, micros = store.connection.redis.time()
    return seconds * 1000 + micros // 1000


def test_the_cap_keeps_the_newest_runs_even_within_one_millisecond(config, redis_client,
                                                                    monkeypatch):
    """Admissions µs apart share a millisecond: the index still orders them as admitted (ties
    would sort by run id), so the cap deletes the oldest and a listing shows the newest first.
    A fresh-clone `make test` once kept a run older than one the cap deleted. The admit calls
    (each replacing the queued one before it) go on one pipeline, so most share a ms."""
    cap = 3
    store = RunStore(Settings.from_env(overrides=dict(config,
                                                      TEST_RUN_MAX_RUNS_PER_WORKFLOW=cap)))
    ids, replies = pipelined_replaces(store, monkeypatch, 200)
    created = [reply[0][4] for reply in replies]  # each admission's millisecond
    assert len(set(created)) < len(created) / 2  # most share their millisecond with another
    assert redis_client.zrange(store.keys.index("echo"), 0, -1) == ids[-cap:]
    assert [r.run_id for r in store.list_runs("echo", 10)] == ids[:-cap - 1:-1]


def test_a_deleted_runs_idempotency_key_admits_anew(config):
    store = RunStore(Settings.from_env(overrides=dict(config,
                                                      TEST_RUN_MAX_RUNS_PER_WORKFLOW=2)))
    first = store.admit("echo", {}, on_conflict=ConflictPolicy.REPLACE, idempotency_key="k")
    for _ in range(2):  # each in a later millisecond: runs of the same one tie in the index
        after = redis_ms(store)
        wait_for(lambda after=after: redis_ms(store) > after, 2, "Redis' clock to tick")
        store.admit("echo", {}, on_conflict=ConflictPolicy.REPLACE)
    assert store.get(first.run_id) is None
    again = store.admit("echo", {}, on_conflict=ConflictPolicy.REPLACE, idempotency_key="k")
    assert isinstance(again, lua.Admitted) and again.run_id != first.run_id


def test_a_runs_log_is_capped_in_bytes_and_lines_and_a_missing_run_gets_none(config,
                                                                              redis_client):
    settings = Settings.from_env(overrides=dict(config, TEST_RUN_MAX_LOG_BYTES=1000,
                                                TEST_RUN_MAX_LOG_LINE=100))
    store = RunStore(settings)
    run = store.admit("echo", {}).run_id
    replies = [store.append_log(run, "é" * 200) for _ in range(30)]  # cut to 100 chars
    assert replies[:4] == [LogReply.APPENDED] * 4 and replies[4] is LogReply.CUT
    assert set(replies[5:]) == {LogReply.FULL}
    logs = redis_client.lrange(keys_of(config).logs("echo", run), 0, -1)
    assert sum(len(line.encode()) for line in logs[:-1]) <= 1000
    assert logs[0].startswith("é" * 100 + " … [100 characters cut]")
    assert logs[-1].startswith("[log cut: TEST_RUN_MAX_LOG_BYTES")
    stream = redis_client.xrange(keys_of(config).events("echo", run))
    assert [e[1]["line"] for e in stream if "line" in e[1]] == logs
    ghost = new_run_id("echo")
    assert store.append_log(ghost, "x") is LogReply.NO_RUN
    assert not redis_client.exists(*run_keys(keys_of(config), "echo", ghost))


def test_lists_are_summaries_and_logs_are_paged(config):
    client = create_app(config).test_client()
    store = client.application.extensions["testruns"].store
    run = expect_status(client.post("/api/workflows/echo/test-runs",
                                    json={"input": {"secret": "x" * 100}}), 202)
    for n in range(25):
        store.append_log(run["run_id"], f"line {n}")
    listed = expect_status(client.get("/api/workflows/echo/test-runs"), 200)["runs"][0]
    assert listed["run_id"] == run["run_id"] and listed["status"] == RunStatus.QUEUED
    assert not {"input", "result", "logs"} & set(listed)
    full = expect_status(client.get("/api/workflows/echo/test-runs?fields=full"), 200)["runs"][0]
    assert full["input"] == {"secret": "x" * 100} and len(full["logs"]) == 25
    logs_url = f"/api/test-runs/{run['run_id']}/logs"
    page = expect_status(client.get(logs_url + "?offset=10&limit=10"), 200)
    assert page["lines"] == [f"line {n}" for n in range(10, 20)]
    assert (page["total"], page["next_offset"]) == (25, 20)
    last = expect_status(client.get(logs_url + "?offset=20&limit=10"), 200)
    assert len(last["lines"]) == 5 and last["next_offset"] is None
    for bad in ("?offset=-1", "?limit=0", "?limit=1001", "?offset=x"):
        assert expect_status(client.get(logs_url + bad), 400)["error"] == "invalid_request"
    assert expect_status(client.get("/api/workflows/echo/test-runs?fields=all"),
                         400)["error"] == "invalid_request"
    missing = f"/api/test-runs/echo-{'0' * 32}/logs"
    assert expect_status(client.get(missing), 404)["error"] == "test_run_not_found"


@pytest.mark.parametrize("line_bytes", [1, 66, 4096], ids=["tiny", "even", "longest"])
def test_a_run_filled_to_every_cap_stays_within_the_stated_bound(config, redis_client,
                                                                 line_bytes):
    settings = Settings.from_env(overrides=config)
    store = RunStore(settings)
    wide = "é" * ((settings.max_input_bytes - 16) // 2)  # 2 bytes a character, as stored
    run = store.admit("echo", {"x": wide}).run_id
    line = "y" * line_bytes
    # until the byte cap is reached, or (tiny lines) past the line cap, where they peak
    for _ in range(settings.max_log_bytes):
        if store.append_log(run, line) is not LogReply.APPENDED or (
                line_bytes == 1 and redis_client.llen(keys_of(config).logs("echo", run))
                >= settings.max_log_lines):
            break
    store.finish(run, RunStatus.FAILED, error_type=ErrorType.ERROR,
                 error="😀" * 4096 + "… [99 more characters cut]",
                 result={"r": "z" * (settings.max_result_bytes - 16)})
    used = sum(redis_client.memory_usage(key, samples=0) or 0
               for key in run_keys(keys_of(config), "echo", run))
    assert used <= run_bytes(settings), (used, run_bytes(settings))
    assert used >= settings.max_input_bytes + settings.max_result_bytes  # it was filled
