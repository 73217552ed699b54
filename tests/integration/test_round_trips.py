"""Redis round trips per admission (and a heartbeat's sweeps), on a private Redis that is both
broker and result backend.

The fused path (the default when the broker is the tracking Redis) is one client command: the
EVALSHA of admit.lua, which also LPUSHes the message. The two-step path
(TEST_RUN_FUSED_ADMISSION=false here; RabbitMQ or a broker on another Redis in production) is
the EVALSHA and kombu's LPUSH. The web never subscribes to result channels.

INFO commandstats counts the commands a script runs inside as well, so it gives the totals;
MONITOR marks a script's commands `[0 lua]`, so it tells client round trips from them. Each
admission is framed by two ECHO markers sent from the probe's own connection: MONITOR sees
commands in the order Redis ran them, so what lies between the markers is the admission's."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from tests.support.api import keys_of, store_of, trigger
from web import create_app
from worker.core import webhooks
from worker.core.celery_app import TASK_NAME, create_celery
from worker.core.settings import Settings
from worker.core.status import RunStatus

ADMISSIONS = 200
START, END = "admission-start", "admission-end"
#: what admit.lua runs inside (xadd, and pttl + pexpire giving the stream the record's TTL:
#: the `queued` event; get: the slot and the pending run; exists: is this a repeat of a call
#: whose run left the slot; zrange: the index's newest, which the new run scores above; zcard:
#: keep_newest counting the workflow's runs — under the cap here, so it deletes none)
INSIDE_ADMIT = {"time": 1, "get": 2, "set": 1, "hset": 1, "expire": 2, "zadd": 1, "zrange": 1,
                "zremrangebyscore": 1, "xadd": 1, "pttl": 1, "pexpire": 1, "exists": 1,
                "zcard": 1}


def commandstats(client: Any) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"]
            for name, stats in client.info("commandstats").items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    out = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    out.pop("info", None)  # our own measuring
    out.pop("echo", None)  # the markers
    return {k: v for k, v in out.items() if v}


class Monitor:
    """Collects (client_type, command name) between each START and END marker."""

    def __init__(self, server: Any) -> None:
        self.framed: list[list[tuple[str, str]]] = []
        #: the same, with each command's words (its arguments as MONITOR prints them)
        self.commands: list[list[tuple[str, list[str]]]] = []
        self._ready = threading.Event()
        self._client = server.client()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(5)

    def _run(self) -> None:
        current: list[tuple[str, list[str]]] | None = None
        with self._client.monitor() as monitor:
            self._ready.set()
            while True:
                seen = monitor.next_command()
                words = seen["command"].split(" ")
                name = words[0].lower()
                if name == "echo" and words[1] == START:
                    current = []
                elif name == "echo" and words[1] == END:
                    assert current is not None
                    self.commands.append(current)
                    self.framed.append([(kind, said[0]) for kind, said in current])
                    current = None
                    if words[2:] == ["last"]:
                        return
                elif current is not None:
                    current.append((seen["client_type"], [name, *words[1:]]))

    def join(self) -> None:
        self._thread.join(10)
        assert not self._thread.is_alive()


@pytest.mark.parametrize(("fused", "round_trips"), [("true", 1), ("false", 2)])
def test_round_trips_per_admission(config, private_redis, fused, round_trips):
    app = create_app(dict(config, REDIS_URL=private_redis.url, TEST_RUN_FUSED_ADMISSION=fused,
                          TEST_RUN_MAX_RUNS_PER_WORKFLOW=str(ADMISSIONS * 2)))
    client = app.test_client()
    assert app.extensions["testruns"].fused is (fused == "true")
    probe = private_redis.client()
    # warm up: script load, kombu's queue binding, connection set-up
    first = client.post("/api/workflows/echo/test-runs").get_json()["run_id"]
    client.post(f"/api/test-runs/{first}/cancel")

    monitor = Monitor(private_redis)
    totals: dict[str, int] = {}
    started = time.monotonic()
    for n in range(ADMISSIONS):
        before = commandstats(probe)
        probe.echo(START)
        resp = client.post("/api/workflows/echo/test-runs")
        probe.echo(END + (" last" if n == ADMISSIONS - 1 else ""))
        after = commandstats(probe)
        assert resp.status_code == 202
        for name, calls in delta(before, after).items():
            totals[name] = totals.get(name, 0) + calls
        client.post(f"/api/test-runs/{resp.get_json()['run_id']}/cancel")
    monitor.join()
    elapsed = time.monotonic() - started

    # the answer's workers_online is read at most once a second per process (workers.lua:
    # an EVALSHA running TIME + ZCOUNT), not per admission: take those reads out, and bound them
    refreshes = totals.pop("zcount", 0)
    totals["evalsha"] -= refreshes
    totals["time"] -= refreshes
    assert refreshes <= elapsed + 1, (refreshes, elapsed)
    for seen in monitor.framed:  # the read comes last, when the route builds the answer
        if ("lua", "zcount") in seen:
            last_eval = max(i for i, (kind, name) in enumerate(seen)
                            if kind != "lua" and name == "evalsha")
            del seen[last_eval:last_eval + 3]  # its EVALSHA, then TIME and ZCOUNT inside it
    expected = {"evalsha": ADMISSIONS, "lpush": ADMISSIONS,
                **{name: n * ADMISSIONS for name, n in INSIDE_ADMIT.items()}}
    assert totals == expected
    assert len(monitor.framed) == ADMISSIONS
    client_commands = [[name for kind, name in seen if kind != "lua"]
                       for seen in monitor.framed]
    expected_client = ["evalsha"] if fused == "true" else ["evalsha", "lpush"]
    assert all(commands == expected_client for commands in client_commands), [
        c for c in client_commands if c != expected_client][:3]
    lua_lpush = sum(1 for seen in monitor.framed for kind, name in seen
                    if kind == "lua" and name == "lpush")
    assert lua_lpush == (ADMISSIONS if fused == "true" else 0)
    per_admission = sum(map(len, client_commands)) / ADMISSIONS
    print(f"client round trips per admission ({'fused' if fused == 'true' else 'two-step'}): "
          f"{per_admission:g}")
    assert per_admission == round_trips


def test_a_409_expected_goes_without_the_message_and_a_freed_slot_asks_for_it(
        config, private_redis):
    """A reject of a workflow this process just found held sends no task message (lazy) and
    no digest of the input; if the slot was freed meanwhile the script asks for it, having
    written nothing, and the second call admits and pushes it."""
    app = create_app(dict(config, REDIS_URL=private_redis.url))
    client = app.test_client()
    probe = private_redis.client()
    queue = config["TEST_RUN_QUEUE"]
    holder = client.post("/api/workflows/echo/test-runs").get_json()["run_id"]
    monitor = Monitor(private_redis)
    answers = []
    for n, step in enumerate(("409, no hint yet", "409, expected", "cancel", "202, asked",
                              "409 after the admission")):
        probe.echo(START)
        if step == "cancel":
            answers.append(client.post(f"/api/test-runs/{holder}/cancel").status_code)
        else:
            answers.append(client.post("/api/workflows/echo/test-runs").status_code)
        probe.echo(END + (" last" if n == 4 else ""))
    monitor.join()
    assert answers == [409, 409, 202, 202, 409]
    evalshas = [[words for kind, words in seen if kind != "lua" and words[0] == "evalsha"]
                for seen in monitor.commands]
    carries = [[TASK_NAME in " ".join(words) for words in calls] for calls in evalshas]
    assert carries[0] == [True]  # no hint: the message goes with it
    assert carries[1] == [False]  # the 409 it expected, without the message
    assert carries[3] == [False, True]  # the slot was free: asked for, then admitted with it
    assert carries[4] == [True]  # admitted since: no hint until the next 409
    # the input's digest (ARGV[14]; only a join or a record reads it) goes exactly with the
    # message: a 409 never hashes the input
    digested = [[len(words[-3]) == 64 for words in calls]  # ARGV[14] of 16
                for calls in evalshas]
    assert digested == carries
    lua_lpush = [sum(1 for kind, words in seen if kind == "lua" and words[0] == "lpush")
                 for seen in monitor.commands]
    assert lua_lpush == [0, 0, 0, 1, 0]
    assert probe.llen(queue) == 2  # the holder's message, and the admitted run's


def test_which_keys_exist_in_chunks(config, private_redis):
    """Which of many keys exist, in order, across chunks where none, some or all do."""
    store = store_of(dict(config, REDIS_URL=private_redis.url))
    items = [f"k{i}" for i in range(10)]
    present = ["k0", "k2", "k3", "k6", "k7", "k9"]
    private_redis.client().mset({f"test-exists:{k}": 1 for k in present})
    existing = store.connection.scripts.existing
    for chunk in (1, 2, 3, 4, 1000):  # chunk 2: (k6, k7) all, (k4, k5) none, (k2, k3)…
        assert existing.which(items, lambda k: f"test-exists:{k}", chunk=chunk) == present
    assert existing.which([], lambda k: k) == []
    assert existing.which(items[4:6], lambda k: f"test-exists:{k}") == []


def test_a_heartbeat_sweep_reads_only_the_workflows_with_work(config, private_redis):
    """The heartbeat sweeps every registered workflow each beat (upkeep.py: a pending run
    into a lapsed slot; the webhooks' outboxes). Asked first which have a pending run or an
    outbox, a beat over thousands of workflows runs promote.lua and reads an outbox only for
    those: a few calls, not one per workflow (100,000 of them took seconds a beat)."""
    cfg = dict(config, REDIS_URL=private_redis.url)
    store = store_of(cfg)
    keys = keys_of(cfg)
    client = create_app(dict(cfg, TEST_RUN_FUSED_ADMISSION="false")).test_client()
    holder = trigger(client, "echo")["run_id"]
    pending = trigger(client, "echo", query_string={"on_conflict": "queue"})["run_id"]
    ended = trigger(client, "sleep")["run_id"]
    store.finish(ended, RunStatus.SUCCEEDED)  # an ending in sleep's outbox
    probe = private_redis.client()
    probe.delete(keys.slot("echo"))  # echo's holder's lease lapsed: nothing released it
    workflow_ids = [f"idle-{i}" for i in range(2500)] + ["echo", "sleep"]

    before = commandstats(probe)
    upkept = store.upkeep(workflow_ids)
    swept = webhooks.Webhooks(create_celery(Settings.from_env(overrides=cfg))).sweep_outboxes(
        workflow_ids, everything=True)
    calls = delta(before, commandstats(probe))

    assert [u.promoted for u in upkept] == [pending]  # the one with a pending run
    assert store.holders(["echo"])["echo"] == pending
    assert holder != pending and swept == []  # webhooks off: the outbox is only emptied
    assert probe.exists(keys.outbox("sleep")) == 0
    assert calls["zrangebyscore"] == 1  # sleep's outbox (echo's holder ends when read)
    # per sweep: an EXISTS of each chunk of 1,000 keys (3), existing.lua for the last chunk
    # (some of its keys exist); then promote.lua for echo
    assert calls["evalsha"] == 1 + 1 + 1, calls
    # (EXISTS of a chunk counts as one call; in existing.lua one a key; promote.lua's two)
    assert calls["exists"] == 2 * 3 + 2 * (len(workflow_ids) - 2000) + 2, calls
