"""Trigger rate limits per caller (TRIGGER_RATE_LIMIT), counted in Redis so every web process
shares them. The counting is the `limits` library's moving window (the one Flask-Limiter
uses), on the run store's own Redis pool: the same timeouts, and an outage is a 503 like any
other Redis call. With tracking on a Redis Cluster it counts there too, on the library's cluster
storage (its own RedisCluster over the same nodes, with the same timeouts): a caller's window is
one key, so one node."""

from __future__ import annotations

import math
import threading
import time

import redis
from limits import RateLimitItem
from limits.storage import RedisClusterStorage, RedisStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from ..core import cluster
from ..core.keys import Keys
from ..core.settings import Settings, rate_limit
from ..core.store import RunStore


def storage_for(settings: Settings, client: redis.Redis, keys: Keys) -> Storage:
    """The moving window's storage: the store's own pool on a single Redis, the library's
    cluster storage on a cluster (a pool cannot be shared with a RedisCluster)."""
    if cluster.is_cluster(settings.tracking_url):
        uri, options = cluster.limits_uri(settings.tracking_url)
        timeout = max(1.0, settings.io_timeout * 2)
        try:
            storage = RedisClusterStorage(uri, key_prefix=keys.rate_limit_prefix(),
                                          socket_connect_timeout=settings.io_timeout,
                                          socket_timeout=timeout, max_connections=32,
                                          **options)
        except redis.exceptions.RedisClusterException as exc:
            raise cluster.ClusterUnreachable(f"no node of the cluster answers: {exc}") from exc
        cluster.outage_when_unreadable(storage.storage)  # an outage, as the store's client
        return storage
    return RedisStorage("redis://", connection_pool=client.connection_pool,
                        key_prefix=keys.rate_limit_prefix())


class TriggerLimiter:
    def __init__(self, storage: Storage, limit: RateLimitItem) -> None:
        self._limiter = MovingWindowRateLimiter(storage)
        self.limit = limit

    def hit(self, caller: str) -> float | None:
        """Count one trigger for `caller`: None if allowed, else the seconds until it would be
        (a refused trigger is not counted)."""
        if self._limiter.hit(self.limit, caller):
            return None
        reset_at = self._limiter.get_window_stats(self.limit, caller).reset_time
        return max(1.0, math.ceil(reset_at - time.time()))


class TriggerRateLimit:
    """TRIGGER_RATE_LIMIT for the service of one process: its limiter is built on first use,
    once (thread-safe), on the store's client."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._limiter: TriggerLimiter | None = None

    def count(self, caller: str) -> float | None:
        """Count a trigger against TRIGGER_RATE_LIMIT: None if allowed (or no limit is set),
        else the seconds until `caller` may trigger again."""
        settings = self._store.settings
        if not settings.trigger_rate_limit:
            return None
        if self._limiter is None:
            client = self._store.connection.redis  # takes the store's lock: not inside ours
            with self._lock:
                if self._limiter is None:
                    storage = storage_for(settings, client, self._store.keys)
                    self._limiter = TriggerLimiter(storage,
                                                   rate_limit(settings.trigger_rate_limit))
        return self._limiter.hit(caller)
