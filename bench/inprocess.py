"""In-process figures: one admission split into its parts, the 503 path with the broker down,
flatness (admission cost against the number of workflows and retained run records), and the
Redis bytes a held slot and a retained run record take. Medians of per-call times."""

from __future__ import annotations

import io
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import redis

from devtools.redis_server import RedisServer
from web import create_app
from worker.client.service import TestRunService
from worker.core.celery_app import TASK_NAME, create_celery
from worker.core.errors import QueueUnavailable
from worker.core.keys import new_run_id
from worker.core.settings import Settings
from worker.core.status import ReleaseReason, RunStatus

from . import workflows


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def _pct_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _timed(fn: Callable[[int], Any], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def split(config: dict[str, str], flush: Callable[[], None], n: int) -> dict[str, float]:
    """Microseconds (median) of: a bare send_task; our admission's parts; the whole trigger;
    the Flask route around it; a bare Flask route around a bare apply_async."""
    from .apps import create as bare_app

    ids = workflows.ids()
    app = create_app(config)
    service: TestRunService = app.extensions["testruns"]
    assert service.fused, "the bench's broker is the tracking Redis: the fused path"
    client = app.test_client()
    bare = bare_app("bare").test_client()
    celery = service.celery
    out: dict[str, float] = {}
    rounds: dict[str, list[float]] = {}
    for r in range(3):  # interleaved: each part once per round
        flush()
        service.trigger(ids[0], {})  # warm
        base = 1 + r * n
        rounds.setdefault("bare send_task (kombu publish)", []).extend(_timed(
            lambda i: celery.send_task(TASK_NAME, args=[f"x-{i}"], task_id=f"x-{i}",
                                       queue=config["TEST_RUN_QUEUE"], ignore_result=True,
                                       retry=False), n))
        messages: list[tuple[str, str]] = []
        run_ids = [new_run_id(ids[base + i]) for i in range(n)]
        # each part binds this round's values now (a def's defaults; mypy cannot type a
        # lambda's)
        def build(i: int, m: list[tuple[str, str]] = messages,
                  r: list[str] = run_ids) -> None:
            m.append(service._messages.now(r[i]))

        def admit(i: int, b: int = base, m: list[tuple[str, str]] = messages,
                  r: list[str] = run_ids) -> Any:
            return service.store.admit(ids[b + i], {}, run_id=r[i], message=m[i])

        rounds.setdefault("build the message (worker/client/message.py)", []).extend(_timed(
            build, n))
        rounds.setdefault("ADMIT script, message included (1 round trip)", []).extend(_timed(
            admit, n))
        base += n

        def trigger(i: int, b: int = base) -> Any:
            return service.trigger(ids[b + i], {})

        rounds.setdefault("service.trigger (all of the above)", []).extend(_timed(trigger, n))
        base += n

        def post(i: int, b: int = base) -> Any:
            return client.post(f"/api/workflows/{ids[b + i]}/test-runs", json={})

        def post_bare(i: int, b: int = base) -> Any:
            return bare.post(f"/api/workflows/{ids[b + i]}/test-runs", json={})

        rounds.setdefault("POST through Flask (this service)", []).extend(_timed(post, n))
        rounds.setdefault("POST through Flask (bare apply_async)", []).extend(_timed(
            post_bare, n))
        rounds.setdefault("409 through Flask (this service)", []).extend(_timed(
            lambda i: client.post(f"/api/workflows/{ids[0]}/test-runs", json={}), n))
    for label, samples in rounds.items():
        out[label] = _median_us(samples)
    return out


def _environ(path: str, body: bytes) -> dict[str, Any]:
    """A POST as gunicorn hands it to the app (no test client in between)."""
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:8000",
            "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False}


def _wsgi_post(app: Any, path: str) -> str:
    got: list[str] = []
    out = app(_environ(path, b"{}"), lambda status, headers, exc=None: got.append(status))
    b"".join(out)
    getattr(out, "close", lambda: None)()
    return got[0]


def conflict_split(config: dict[str, str], flush: Callable[[], None], client: redis.Redis,
                   n: int) -> dict[str, float]:
    """Where a 409 goes, at the WSGI call (what gunicorn calls; no HTTP, no test client):
    median wall and CPU µs of the floor (Flask answering 202, touching nothing), the limit's
    conflict (the same Flask doing one EVALSHA) and ours, interleaved call by call; Redis' own
    time per EVALSHA from INFO commandstats; one round trip (the limit's conflict less the
    floor and its Redis time); and so the Python per conflict (ours less Redis' time and one
    round trip)."""
    from .apps import create as bare_app

    flush()
    ids = workflows.ids()
    app, floor, limit = create_app(config), bare_app("floor"), bare_app("limit")
    path = f"/api/workflows/{ids[0]}/test-runs"
    assert _wsgi_post(app, path).startswith("202") and _wsgi_post(limit, path)[:3] == "202"
    calls = {"floor": (floor, f"/api/workflows/{ids[1]}/test-runs"), "limit": (limit, path),
             "ours": (app, path), OFF: (_without_fast_path(config), path)}
    wall: dict[str, list[float]] = {k: [] for k in calls}
    cpu: dict[str, list[float]] = {k: [] for k in calls}
    for _ in range(n):
        for label, (target, url) in calls.items():
            t, c = time.perf_counter(), time.process_time()
            _wsgi_post(target, url)
            cpu[label].append(time.process_time() - c)
            wall[label].append(time.perf_counter() - t)
    redis_us = {}
    for label in ("limit", "ours", OFF):
        target, url = calls[label]
        client.config_resetstat()
        for _ in range(min(n, 1000)):
            assert _wsgi_post(target, url).startswith("409")
        redis_us[label] = float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
    return _python(wall, cpu, redis_us)


#: "ours" with TEST_RUN_FAST_PATH=false: Flask answers the trigger (web/fast.py)
OFF = "ours, Flask"


def _without_fast_path(config: dict[str, str]) -> Any:
    return create_app(dict(config, TEST_RUN_FAST_PATH="false"))


def _python(wall: dict[str, list[float]], cpu: dict[str, list[float]],
            redis_us: dict[str, float]) -> dict[str, float]:
    """Medians, Redis' time, one round trip (the limit less the floor and its Redis time) and
    the Python of ours, with the fast path and without (ours less Redis' time and a trip)."""
    out = {f"{k} wall": _median_us(v) for k, v in wall.items()}
    out.update({f"{k} cpu": _median_us(v) for k, v in cpu.items()})
    out.update({f"redis {k}": us for k, us in redis_us.items()})
    out["round trip"] = out["limit wall"] - out["floor wall"] - redis_us["limit"]
    out["python"] = out["ours wall"] - redis_us["ours"] - out["round trip"]
    out[f"python, {OFF}"] = out[f"{OFF} wall"] - redis_us[OFF] - out["round trip"]
    return out


def admission_split(config: dict[str, str], flush: Callable[[], None], client: redis.Redis,
                    n: int, pool: int = 100) -> dict[str, float]:
    """`conflict_split` for an admission (202): each call takes a free slot of one of `pool`
    workflows per app, and Redis is flushed after each round over them (not timed), so the
    per-workflow metric series are made once, as in a service running for a while."""
    from .apps import create as bare_app

    ids = workflows.ids()
    apps = {"floor": bare_app("floor"), "limit": bare_app("limit"), "ours": create_app(config),
            OFF: _without_fast_path(config)}
    urls = {label: [f"/api/workflows/{ids[k * pool + i]}/test-runs" for i in range(pool)]
            for k, label in enumerate(apps)}
    wall: dict[str, list[float]] = {k: [] for k in apps}
    cpu: dict[str, list[float]] = {k: [] for k in apps}
    for r in range(max(1, n // pool) + 1):  # the first round makes the series: not counted
        flush()
        for i in range(pool):
            for label, target in apps.items():
                t, c = time.perf_counter(), time.process_time()
                status = _wsgi_post(target, urls[label][i])
                took_cpu, took = time.process_time() - c, time.perf_counter() - t
                assert status.startswith("202"), (label, status)
                if r:
                    cpu[label].append(took_cpu)
                    wall[label].append(took)
    redis_us = {}
    for label in ("limit", "ours", OFF):
        flush()
        client.config_resetstat()
        for url in urls[label]:
            assert _wsgi_post(apps[label], url).startswith("202")
        redis_us[label] = float(client.info("commandstats")["cmdstat_evalsha"]["usec_per_call"])
    flush()
    return _python(wall, cpu, redis_us)


def unavailable(config: dict[str, str], dead_broker: str, n: int) -> tuple[float, float]:
    """p50/p99 ms of a trigger answered 503 because the broker is down (the two-step path:
    the fused one has no separate broker to lose)."""
    service = TestRunService(create_celery(Settings.from_env(overrides=dict(
        config, CELERY_BROKER_URL=dead_broker)), fail_fast=True))
    ids = workflows.ids()

    def one(i: int) -> None:
        try:
            service.trigger(ids[i], {})
        except QueueUnavailable:
            return
        raise AssertionError("a trigger with the broker down was admitted")

    samples = _timed(one, n)
    return _pct_ms(samples, 0.5), _pct_ms(samples, 0.99)


def _fill(client: redis.Redis, settings: Settings, workflow_ids: list[str], per_workflow: int,
          start_ms: int) -> None:
    """Retained run records as the finish script leaves them (a hash, its index entry), for
    `per_workflow` runs of each workflow; pipelined, in batches."""
    keys = service_keys(settings)
    pipe = client.pipeline(transaction=False)
    count = 0
    for k in range(per_workflow):
        for wid in workflow_ids:
            run_id = new_run_id(wid)
            record = keys.run(wid, run_id)
            pipe.hset(record, mapping={
                "run_id": run_id, "workflow_id": wid, "type": "test",
                "status": RunStatus.SUCCEEDED.value, "created_ms": start_ms + k,
                "started_ms": start_ms + k, "finished_ms": start_ms + k, "input": "{}",
                "result": "{}", "release_reason": ReleaseReason.SUCCEEDED.value,
                "released_ms": start_ms + k})
            pipe.expire(record, settings.retention)
            pipe.zadd(keys.index(wid), {run_id: start_ms + k})
            count += 1
            if count % 2000 == 0:
                pipe.execute()
    pipe.execute()


def service_keys(settings: Settings) -> Any:
    from worker.core.keys import Keys
    return Keys(settings.key_prefix)


def flatness(config: dict[str, str], flush: Callable[[], None], client: redis.Redis, n: int,
             records: int, log: Callable[[str], None]) -> dict[str, float]:
    """Median µs of an admission (trigger; the release after it is not timed) over all
    BENCH_WORKFLOWS (100,000) workflows holding a retained record each, and with `records`
    retained records in all, each against an empty Redis of its own (10 workflows) measured
    call by call in between: this machine's speed drifts by more than the effect looked for
    (the empty case alone moved 581 → 507 µs between two measures of one leg, run J), and a
    drift common to both sides cancels in their ratio. Each side is its own redis-server,
    whose fused path the service takes (tracking and broker in one Redis)."""
    empty_server = RedisServer().start()
    try:
        empty_client = empty_server.client()
        empty_config = dict(config, REDIS_URL=empty_server.url)
        full, empty = _service(config), _service(empty_config)
        ids = workflows.ids()
        now_ms = int(time.time() * 1000)
        out: dict[str, float] = {}

        def measure(label: str, pool: list[str]) -> None:
            """Each call on the filled Redis and one on the empty, the order alternating;
            SETTLE_S of the same first, not counted."""
            rng = random.Random(1)
            sides: dict[str, tuple[TestRunService, list[str], list[float]]] = {
                label: (full, pool, []), f"{label}: empty": (empty, ids[:10], [])}
            order = list(sides.values())

            def pair(i: int, count: bool) -> None:
                for service, among, samples in order if i % 2 else order[::-1]:
                    wid = rng.choice(among)
                    t = time.perf_counter()
                    run = service.trigger(wid, {}).run
                    if count:
                        samples.append(time.perf_counter() - t)
                    service.store.finish(run.run_id, RunStatus.SUCCEEDED, result=None)

            settled, i = time.monotonic() + SETTLE_S, 0
            while time.monotonic() < settled:
                pair(i, False)
                i += 1
            for i in range(n):
                pair(i, True)
            for side, (_, _, samples) in sides.items():
                out[side] = _median_us(samples)
            for c in (client, empty_client):  # the pushed messages: no worker consumes here
                c.delete(full.settings.queue)
            empty_client.flushall()

        flush()
        for service in (full, empty):  # warm
            service.store.finish(service.trigger(ids[-1], {}).run.run_id, RunStatus.SUCCEEDED)
        empty_client.flushall()
        log(f"flatness: filling one record for each of {len(ids):,} workflows")
        _fill(client, full.settings, ids, 1, now_ms)
        measure(f"{len(ids):,} workflows", ids)
        per = max(1, records // len(ids) - 1)
        log(f"flatness: filling to {records:,} retained records")
        _fill(client, full.settings, ids, per, now_ms + 10)
        measure(f"{records:,} retained records", ids)
        out["dbsize"] = float(client.dbsize())
        flush()
        return out
    finally:
        empty_server.stop()


#: seconds of paired triggers, not counted, after each fill: right after a bulk load the filled
#: side runs slower for a few seconds — consecutive 3-second measures after the
#: 1,000,000-record fill: 1.25×, 1.13×, 1.02×, 1.01× (stop 29). Redis working off the load
#: (its allocator's purge of dirty pages, its key table's rehash) is the likely cause; which
#: one was not measured
SETTLE_S = 15.0


def _service(config: dict[str, str]) -> TestRunService:
    service = TestRunService(create_celery(Settings.from_env(overrides=config), fail_fast=True))
    assert service.fused, "the bench's broker is its tracking Redis: the fused path"
    return service


def redis_bytes(config: dict[str, str], flush: Callable[[], None],
                client: redis.Redis, n: int = 200) -> dict[str, float]:
    """MEMORY USAGE of what one held slot and one retained run record keep, averaged over `n`
    runs: the slot key; the record, its event stream and its share of the workflow's index."""
    settings = Settings.from_env(overrides=config)
    service = TestRunService(create_celery(settings, fail_fast=True))
    keys = service_keys(settings)
    flush()
    ids = workflows.ids()[:n]
    runs = [service.trigger(wid, {}).run.run_id for wid in ids]
    slot = statistics.mean(client.memory_usage(keys.slot(w)) or 0 for w in ids)
    message = statistics.mean(len(m) for m in client.lrange(settings.queue, 0, -1))
    for run_id in runs:
        service.store.finish(run_id, RunStatus.SUCCEEDED, result={"ok": True})
    record = statistics.mean(
        (client.memory_usage(keys.run(w, r)) or 0) + (client.memory_usage(keys.events(w, r))
                                                       or 0)
        + (client.memory_usage(keys.index(w)) or 0) for w, r in zip(ids, runs, strict=True))
    flush()
    return {"held slot": slot, "retained run record (record, events, index)": record,
            "queued message (bytes of JSON)": message}
