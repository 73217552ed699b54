"""`/readyz` is cheap: real gunicorn, with Redis and the broker on private redis-servers whose
own counters (INFO stats, INFO commandstats) say what 200 probes cost once the process has
made its first check: at most one PING per check (a check at most every READINESS_CACHE_S) on
each server, and not one new connection. A broker that dies is still noticed within about a
cache period, and one that comes back is reconnected."""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request

import pytest

from devtools.redis_server import RedisServer
from tests.support.http import concurrently
from tests.support.procs import Gunicorn, wait_for
from worker.client.readiness import READINESS_CACHE_S

WORKERS = 1  # one process: which of several takes a probe is up to the kernel
PROBES = 200


def readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def counters(client) -> tuple[int, int]:
    """(connections accepted so far, PINGs answered so far), read on one kept connection."""
    accepted = int(client.info("stats")["total_connections_received"])
    pings = int(client.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))
    return accepted, pings


@pytest.fixture
def servers():
    tracking, broker = RedisServer().start(), RedisServer().start()
    yield tracking, broker
    tracking.stop()
    broker.stop()


def test_readyz_is_cached_and_opens_no_broker_connection_per_request(config, servers):
    tracking, broker = servers
    env = dict(config, REDIS_URL=tracking.url, CELERY_BROKER_URL=broker.url,
               CELERY_RESULT_BACKEND=tracking.url)
    server = Gunicorn(env, workers=WORKERS, threads=8).wait_ready()
    try:
        watch = tracking.client(), broker.client()
        assert readyz(server.url) == 200  # the process's first check opens its connections
        before = counters(watch[0]), counters(watch[1])
        started = time.monotonic()
        statuses = concurrently(8, lambda i: [readyz(server.url) for _ in range(PROBES // 8)])
        took = time.monotonic() - started
        after = counters(watch[0]), counters(watch[1])
        assert {s for batch in statuses for s in batch} == {200}
        checks = WORKERS * (math.ceil(took / READINESS_CACHE_S) + 1)  # the most there can be
        for (accepted0, pings0), (accepted1, pings1), name in zip(
                before, after, ("redis", "broker"), strict=True):
            assert pings1 - pings0 <= checks, (name, pings1 - pings0, checks, took)
            # the process keeps its connections: not one new one for 200 probes
            assert accepted1 - accepted0 == 0, (name, accepted1 - accepted0)

        broker.stop()
        wait_for(lambda: readyz(server.url) == 503, 3 * READINESS_CACHE_S + 5,
                 "readyz to notice the broker is gone")
        broker.start()
        wait_for(lambda: readyz(server.url) == 200, 3 * READINESS_CACHE_S + 10,
                 "readyz to reconnect to the broker")
    finally:
        server.kill_group()
