"""Readiness, cheap enough to be polled by anyone: `/readyz` is unauthenticated, so a load
balancer probing every 100 ms, or a caller hammering it, must not cost a new connection or a
round of checks per request.

Each process checks at most once per READINESS_CACHE_S (concurrent requests wait for the one
check in flight and share its answer). A check is one Redis PING on the store's pooled
connection, and for the broker: nothing more when it is the same Redis (CELERY_BROKER_URL ==
REDIS_URL: the PING answered for it), else one liveness probe on a broker connection this
process keeps open between checks (a PING for a Redis broker, a heartbeat frame for AMQP),
reconnected only after it failed — at once, so a RabbitMQ node lost under it fails over to the
next URL of the list within the same check.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery

from ..core import rabbit
from ..core.errors import Dependency
from ..core.settings import Settings
from ..core.store import RunStore

logger = logging.getLogger(__name__)

#: how long one process reuses a readiness answer
READINESS_CACHE_S = 1.0
OK, UNREACHABLE = "ok", "unreachable"


class Readiness:
    def __init__(self, celery: Celery, store: RunStore, settings: Settings) -> None:
        self.celery, self.store, self.settings = celery, store, settings
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._answer: dict[Dependency, str] = {}
        self._broker: Any = None  # a kombu Connection kept between checks

    def check(self) -> dict[Dependency, str]:
        """`ok` or `unreachable`, for Redis and for the broker (at most READINESS_CACHE_S
        old)."""
        with self._lock:
            if time.monotonic() - self._checked_at >= READINESS_CACHE_S:
                self._answer = self._check()
                self._checked_at = time.monotonic()
            return dict(self._answer)

    def _check(self) -> dict[Dependency, str]:
        answer = {Dependency.REDIS: self._redis()}
        if self.settings.broker_url == self.settings.tracking_url:
            answer[Dependency.BROKER] = answer[Dependency.REDIS]  # the same server
        else:
            answer[Dependency.BROKER] = self._broker_state()
        return answer

    def _redis(self) -> str:
        try:
            self.store.ping()
            return OK
        except Exception as exc:  # noqa: BLE001
            logger.warning("readiness: redis unreachable: %s: %s", type(exc).__name__, exc)
            return UNREACHABLE

    def _broker_state(self) -> str:
        kept = self._broker is not None
        try:
            self._probe_broker()
            return OK
        except Exception as exc:  # noqa: BLE001
            failure = exc
            self._drop_broker()
        if kept:
            # the kept connection died (e.g. its RabbitMQ node did): a fresh one, which fails
            # over through a URL list, says whether the broker is still there
            try:
                self._probe_broker()
                return OK
            except Exception as exc:  # noqa: BLE001
                failure = exc
                self._drop_broker()
        logger.warning("readiness: broker unreachable: %s: %s", type(failure).__name__, failure)
        return UNREACHABLE

    def _probe_broker(self) -> None:
        if self._broker is None:
            self._broker = self.celery.connection_for_write()
        conn = self._broker
        # every node of a RabbitMQ list once, each within the connect timeout
        url = self.settings.broker_url
        conn.ensure_connection(max_retries=rabbit.failover_retries(url),
                               timeout=self.settings.io_timeout * rabbit.nodes(url))
        if conn.transport.driver_type == "redis":
            conn.default_channel.client.ping()
        else:
            conn.connection.send_heartbeat()

    def _drop_broker(self) -> None:
        conn, self._broker = self._broker, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - it is gone either way
                logger.debug("readiness: closing the broker connection failed", exc_info=True)
