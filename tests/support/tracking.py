"""Where the suite's tracking lives: the single Redis of REDIS_URL (the default), or, with
TEST_TRACKING=cluster, a 6-node Redis Cluster (3 masters, 3 replicas; tests/support/
redis_cluster.py) that the test session starts — one per pytest-xdist worker — so the lifecycle
and chaos suites run their scripts, leases and fencing on the cluster as a deployment on
`TEST_RUN_TRACKING_URL=redis+cluster://…` does.

On the cluster, `make_config` puts its URL in TEST_RUN_TRACKING_URL and in TEST_BODY_LOG_URL
(the test workflows' record of when their bodies ran goes there too, so `redis_client` — a
cluster client then — reads both); the broker and the result backend stay the single Redis of
REDIS_URL (kombu has no cluster transport): admission takes the two-step path. The tests that
run on it are marked `cluster_tracking`; a test that restarts its tracking empty gets a server
or a cluster of its own (`restartable`: every node restarted with no data), and those whose
fault has a meaning for one Redis only (Sentinel, fencing by a stopped server) skip there,
saying why (`single_redis_only`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devtools.redis_server import RedisServer
from tests.support import redis_cluster
from tests.support.redis_cluster import RedisCluster

MODES = ("redis", "cluster")
_url: str | None = None  # the session's cluster (set by conftest's `tracking_cluster` fixture)


def mode() -> str:
    chosen = os.environ.get("TEST_TRACKING", "").strip().lower() or "redis"
    if chosen not in MODES:
        raise ValueError(f"TEST_TRACKING: unknown tracking {chosen!r}; known: {MODES}")
    return chosen


def on_cluster() -> bool:
    return mode() == "cluster"


def header() -> str:
    """One line for the session's header."""
    if not on_cluster():
        return "tracking: the single Redis of REDIS_URL (TEST_TRACKING=cluster: a Redis Cluster)"
    return ("tracking: a 6-node Redis Cluster per test process (TEST_TRACKING=cluster); the "
            "result backend (and the `redis` broker) the single Redis of REDIS_URL")


def started(url: str | None) -> None:
    """The session's cluster is up at `url` (None: stopped)."""
    global _url
    _url = url


def config_overrides() -> dict[str, str]:
    """What `make_config` adds: nothing on a single Redis; the cluster's URL for tracking and
    for the test bodies' log."""
    if not on_cluster():
        return {}
    if _url is None:
        raise RuntimeError("TEST_TRACKING=cluster but the session's cluster is not started: "
                           "make_config was called before conftest's `tracking_cluster` fixture")
    return {"TEST_RUN_TRACKING_URL": _url, "TEST_BODY_LOG_URL": _url}


def single_redis_only(why: str) -> pytest.MarkDecorator:
    """Skip a test whose fault or reading only has a meaning for one Redis when tracking is on
    the cluster (TEST_TRACKING=cluster), with `why` as the reason."""
    return pytest.mark.skipif(on_cluster(), reason=f"tracking on a Redis Cluster: {why}")


class ServerTracking:
    """A redis-server of the test's own as REDIS_URL (tracking, broker and result backend),
    restarted empty as a whole."""

    #: a running run's lease (TEST_RUN_HEARTBEAT_TTL) that outlives the outage: a server is
    #: back in milliseconds
    heartbeat_ttl = 3.0
    #: seconds the restart keeps tracking away (a run ending inside them is not recorded: it
    #: ends `lost` with its lease, the known window of any outage)
    outage_s = 0.0

    def __init__(self, server: RedisServer) -> None:
        self.server = server

    def settings(self) -> dict[str, str]:
        return {"REDIS_URL": self.server.url}

    def restart_empty(self) -> None:
        self.server.restart()  # --save "" --appendonly no

    def keys(self, pattern: str) -> list[str]:
        return [str(k) for k in self.server.client().scan_iter(match=pattern)]


class ClusterTracking:
    """A Redis Cluster of the test's own as TEST_RUN_TRACKING_URL, every node restarted with no
    data; the broker stays the suite's single Redis, whose queue survives (as a broker kept
    apart from a cluster's tracking does)."""

    #: a restarted master waits 2 s before it takes writes (Redis' CLUSTER_WRITABLE_DELAY), so
    #: the cluster answers again ~2.5 s after the restart: a lease of 3 s would be fenced (its
    #: body killed before it can lapse, and the run `lost`), as it must be
    heartbeat_ttl = 8.0
    outage_s = 3.0

    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster

    def settings(self) -> dict[str, str]:
        return {"TEST_RUN_TRACKING_URL": self.cluster.url()}

    def restart_empty(self) -> None:
        self.cluster.restart_empty()

    def keys(self, pattern: str) -> list[str]:
        return [str(k) for k in self.cluster.client().scan_iter(match=pattern)]


def restartable() -> Iterator[ServerTracking | ClusterTracking]:
    """Tracking of a test's own that it may restart empty (the `restartable_tracking`
    fixture): a redis-server, or on the cluster a Redis Cluster; stopped after the test."""
    if on_cluster():
        for cluster in redis_cluster.running():
            yield ClusterTracking(cluster)
        return
    server = RedisServer().start()
    try:
        yield ServerTracking(server)
    finally:
        server.stop()
