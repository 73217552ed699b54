"""How many workers consume the test-run queue, as the web and the CLI read it.

Workers advertise themselves in Redis (worker/runner/liveness.py); a web process reads the
count (workers.lua: ZCOUNT) at most once a second, so a trigger's answer can say
`workers_online` without a Redis round trip of its own.
"""

from __future__ import annotations

import logging
import threading
import time

from ..core.store import RunStore

logger = logging.getLogger(__name__)

#: how long a web process reuses a workers count it read
CACHE_SECONDS = 1.0


def workers_online(store: RunStore) -> int:
    """Workers advertised on the test-run queue now (one EVALSHA: TIME + ZCOUNT)."""
    scripts = store.connection.scripts
    return int(scripts.workers.count(store.keys, store.settings.queue))


class OnlineCount:
    """The workers count, read at most once per CACHE_SECONDS per process. None when Redis
    could not be read (the caller answers without the number rather than failing)."""

    def __init__(self, store: RunStore, max_age: float = CACHE_SECONDS) -> None:
        self._store = store
        self._max_age = max_age
        self._lock = threading.Lock()
        self._value: int | None = None
        self._read_at = float("-inf")

    def get(self) -> int | None:
        now = time.monotonic()
        if now - self._read_at < self._max_age:
            return self._value
        with self._lock:
            if time.monotonic() - self._read_at < self._max_age:
                return self._value
            try:
                self._value = workers_online(self._store)
            except Exception as exc:  # noqa: BLE001 - Redis away: no number, no failure
                logger.warning("could not read the workers online: %s: %s",
                               type(exc).__name__, exc)
                self._value = None
            self._read_at = time.monotonic()
            return self._value


