"""Trigger rate limits per caller (TRIGGER_RATE_LIMIT), counted in Redis so every web process
shares them. The counting is the `limits` library's moving window (the one Flask-Limiter
uses), on the run store's own Redis pool: the same timeouts, and an outage is a 503 like any
other Redis call."""

from __future__ import annotations

import math
import time

import redis
from limits import RateLimitItem
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from .keys import Keys


class TriggerLimiter:
    def __init__(self, client: redis.Redis, keys: Keys, limit: RateLimitItem) -> None:
        storage = RedisStorage("redis://", connection_pool=client.connection_pool,
                               key_prefix=keys.rate_limit_prefix())
        self._limiter = MovingWindowRateLimiter(storage)
        self.limit = limit

    def hit(self, caller: str) -> float | None:
        """Count one trigger for `caller`: None if allowed, else the seconds until it would be
        (a refused trigger is not counted)."""
        if self._limiter.hit(self.limit, caller):
            return None
        reset_at = self._limiter.get_window_stats(self.limit, caller).reset_time
        return max(1.0, math.ceil(reset_at - time.time()))
