"""Redis commands per admission, counted with INFO commandstats on a private
Redis that is both broker and result backend. An admission is one EVALSHA (slot + record) and
one LPUSH (the message): the web never subscribes to result channels."""

from __future__ import annotations

import time

from web import create_app

ADMISSIONS = 1000


def commandstats(client) -> dict[str, int]:
    return {name.removeprefix("cmdstat_"): stats["calls"]
            for name, stats in client.info("commandstats").items()}


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    out = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    out.pop("info", None)  # our own measuring
    return {k: v for k, v in out.items() if v}


def test_two_redis_commands_per_admission(config, private_redis):
    app = create_app(dict(config, REDIS_URL=private_redis.url))
    client = app.test_client()
    probe = private_redis.client()
    # warm up: script load, kombu's queue binding, connection set-up
    first = client.post("/api/workflows/echo/test-runs").get_json()["run_id"]
    client.post(f"/api/test-runs/{first}/cancel")

    totals: dict[str, int] = {}
    started = time.monotonic()
    for _ in range(ADMISSIONS):
        before = commandstats(probe)
        resp = client.post("/api/workflows/echo/test-runs")
        after = commandstats(probe)
        assert resp.status_code == 202
        for name, calls in delta(before, after).items():
            totals[name] = totals.get(name, 0) + calls
        client.post(f"/api/test-runs/{resp.get_json()['run_id']}/cancel")
    elapsed = time.monotonic() - started

    # commandstats also counts the commands a script runs; those are exactly ADMIT's
    # (xadd, and pttl + pexpire giving the stream the record's TTL: the `queued` event)
    inside_admit = {"time": 1, "get": 1, "set": 1, "hset": 1, "expire": 2, "zadd": 1,
                    "zremrangebyscore": 1, "xadd": 1, "pttl": 1, "pexpire": 1, "zcard": 1}
    # and, past TEST_RUN_MAX_RUNS_PER_WORKFLOW (200) runs, keep_newest deleting the oldest
    trimmed = ADMISSIONS + 1 - app.extensions["testruns"].settings.max_runs_per_workflow
    # the answer's workers_online is read at most once a second per process (workers.lua:
    # EVALSHA running TIME + ZCOUNT), not per admission: take those reads out, and bound them
    refreshes = totals.pop("zcount", 0)
    totals["evalsha"] -= refreshes
    totals["time"] -= refreshes
    assert refreshes <= elapsed + 1, (refreshes, elapsed)
    print(f"workers-online reads: {refreshes} in {elapsed:.1f}s over {ADMISSIONS} admissions")
    expected = {"evalsha": ADMISSIONS, "lpush": ADMISSIONS,
                **{name: n * ADMISSIONS for name, n in inside_admit.items()},
                **{name: trimmed for name in ("zrange", "hget", "del", "zrem")}}
    assert totals == expected
    round_trips = (totals["evalsha"] + totals["lpush"]) / ADMISSIONS
    print(f"client commands per admission: {round_trips:g} (EVALSHA + LPUSH)")
    assert round_trips == 2
