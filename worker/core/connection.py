"""The Redis client for slots and run records, built from Settings in one place, and the
scripts registered on it (`connect()`: a `Connection`, what `RunStore.connection` holds).

Timeouts and retries are chosen so an outage answers 503 fast instead of stalling a request
thread (redis-py 8 retries 10 times with backoff by default, ~4 s per call while Redis is
down), and the pool blocks for a free connection instead of raising (redis-py 8 caps a pool at
100 and raises `MaxConnectionsError`, a 500, under a burst of threaded requests). A
`sentinel://` URL gets the same options on a client that follows the master
(worker/core/sentinel.py), and a `redis+cluster://` URL on a RedisCluster with the same
timeouts and retry (worker/core/cluster.py).

The client follows TEST_RUN_TRACKING_URL (by default REDIS_URL): Celery's result backend is a
setting of its own and never shares this client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import cluster, lua, sentinel
from .settings import Settings

#: for annotations inside Connection, whose `redis` is a field: a single Redis (direct or
#: through Sentinel), or a Redis Cluster (the same commands, routed by key)
RedisClient = redis.Redis

#: connections per process; a gthread web process has at most `threads` requests at once
MAX_CONNECTIONS = 64


def redis_client(settings: Settings, *, block_s: float = 0.0,
                 max_connections: int = MAX_CONNECTIONS,
                 client_name: str | None = None) -> redis.Redis:
    """A client with its own pool. Build it lazily in the process that uses it: a connection
    shared across a fork (gunicorn --preload, Celery's prefork pool) corrupts replies.

    `block_s` is for a client whose commands wait in Redis on purpose (XREAD BLOCK): its
    socket timeout is that much longer, so only a Redis that stops answering times out.
    `client_name` names its connections in CLIENT LIST (one CLIENT SETNAME per connection).
    On a cluster, `max_connections` is per node."""
    read_timeout = max(1.0, settings.io_timeout * 2) + block_s
    named = {"client_name": client_name} if client_name else {}
    url = settings.tracking_url
    if cluster.is_cluster(url):
        client: Any = cluster.cluster_client(
            # per node; redis-py builds the nodes' pools itself (not blocking ones): past this
            # a call raises MaxConnectionsError, a ConnectionError (a 503), never reached with
            # a gunicorn process's threads
            url, max_connections=max_connections, socket_connect_timeout=settings.io_timeout,
            socket_timeout=read_timeout, health_check_interval=30, decode_responses=True,
            # one retry after a connection error (redis-py re-reads the slots' owners first),
            # so a failed-over master costs a 503 for the failover's length, not a stall
            retry=Retry(NoBackoff(), 1), **named)
        return cast(redis.Redis, client)
    if sentinel.is_sentinel(url):
        assert settings.sentinel_master  # Settings refuses a sentinel URL without it
        return sentinel.master_client(
            url, settings.sentinel_master, settings.sentinel_password,
            max_connections=max_connections, pool_timeout=read_timeout,
            connect_timeout=settings.io_timeout, read_timeout=read_timeout,
            health_check_interval=30, decode_responses=True, retry=Retry(NoBackoff(), 1),
            **named)
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=read_timeout,  # wait this long for a free connection
        socket_connect_timeout=settings.io_timeout,
        socket_timeout=read_timeout,
        health_check_interval=30,
        decode_responses=True,
        # one immediate retry survives a connection dropped by a Redis restart; more would turn
        # an outage into multi-second stalls
        retry=Retry(NoBackoff(), 1),
        **named,
    )
    return redis.Redis(connection_pool=pool)


class Scripts:
    """The scripts, registered on one client."""

    def __init__(self, client: redis.Redis) -> None:
        self.admit = lua.Admit(client)
        self.start = lua.Start(client)
        self.finish = lua.Finish(client)
        self.read = lua.Read(client)
        self.heartbeat = lua.Heartbeat(client)
        self.force_release = lua.ForceRelease(client)
        self.promote = lua.Promote(client)
        self.existing = lua.Existing(client)  # which workflows a heartbeat sweep visits
        self.advertise = lua.Advertise(client)
        self.workers = lua.Workers(client)
        self.append_log = lua.AppendLog(client)
        # the endings outbox and the webhook deliveries (worker/core/webhooks.py)
        self.attach = lua.Attach(client)
        self.take_ending = lua.TakeEnding(client)
        self.delivery_log = lua.DeliveryLog(client)
        self.webhook_schedule = lua.WebhookSchedule(client)
        self.webhook_claim = lua.WebhookClaim(client)
        self.webhook_begin = lua.WebhookBegin(client)
        self.webhook_end = lua.WebhookEnd(client)

    def all(self) -> list[lua.LuaScript]:
        return [self.admit, self.start, self.finish, self.read, self.heartbeat,
                self.force_release, self.advertise, self.workers, self.append_log,
                self.attach, self.take_ending, self.delivery_log, self.webhook_schedule,
                self.webhook_claim, self.webhook_begin, self.webhook_end, self.promote,
                self.existing]

    def on_promoted(self, hook: lua.OnPromoted, expired: lua.OnPendingExpired) -> None:
        """Hand each run a script promotes into a freed slot to `hook`, and each pending run
        it ends expired there instead to `expired` (the run store's)."""
        for script in self.all():
            script.on_promoted, script.on_pending_expired = hook, expired

    def load(self) -> None:
        """Load every script now, so no call pays a NOSCRIPT round trip."""
        for script in self.all():
            script.load()


@dataclass(frozen=True)
class Connection:
    """The store's Redis client (the request path's pool) and the scripts registered on it.
    `cluster`: the client is a RedisCluster, whose pipelines refuse scripts (EVALSHA), TIME
    and CONFIG GET: the callers run those one by one."""

    redis: RedisClient
    scripts: Scripts
    cluster: bool = False


def connect(settings: Settings) -> Connection:
    """A client for the request path (`redis_client`) with every script registered on it."""
    client = redis_client(settings)
    return Connection(client, Scripts(client), cluster.is_cluster(settings.tracking_url))
