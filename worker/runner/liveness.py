"""Worker liveness, the worker's side: it advertises that it consumes the test-run queue.

A worker's main process advertises itself in Redis (advertise.lua: a sorted set of hostname →
end of the advertisement, on Redis' clock) every third of TEST_RUN_HEARTBEAT_TTL, for
TEST_RUN_HEARTBEAT_TTL, and withdraws at a clean shutdown; a worker that dies drops out when its
advertisement ends. The web reads the count (workers.lua: ZCOUNT) at most once a second per
process (worker/client/online.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import bootsteps

from ..core.store import RunStore

logger = logging.getLogger(__name__)


def advertise(store: RunStore, hostname: str, ttl_s: float, info: dict[str, str]) -> int:
    """Say this worker consumes the test-run queue for `ttl_s` more seconds."""
    return store.connection.scripts.advertise(store.keys, store.settings.queue, hostname,
                                              ttl_ms=int(ttl_s * 1000), info=info)


def withdraw(store: RunStore, hostname: str) -> int:
    """A clean shutdown: this worker no longer consumes the queue."""
    return store.connection.scripts.advertise(store.keys, store.settings.queue, hostname,
                                              ttl_ms=0)


class LivenessStep(bootsteps.StartStopStep):
    """Advertises the worker while it consumes the test-run queue, from the main process."""

    requires = {"celery.worker.components:Pool"}
    label = "TestRunLiveness"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._hostname = ""
        self._store: RunStore | None = None

    def start(self, parent: Any) -> None:
        app = parent.app
        if not hasattr(app, "store") or not _consumes(app):
            return
        self._store = app.store
        self._hostname = parent.hostname
        info = {"pid": str(os.getpid()), "concurrency": str(parent.concurrency or ""),
                "queue": app.settings.queue, "started_ms": str(int(time.time() * 1000))}
        self._thread = threading.Thread(target=self._loop, args=(app.settings.heartbeat_ttl,
                                                                 info),
                                        daemon=True, name="testrun-liveness")
        self._thread.start()

    def _loop(self, ttl: float, info: dict[str, str]) -> None:
        assert self._store is not None
        while not self._stopping.is_set():
            try:
                advertise(self._store, self._hostname, ttl, info)
            except Exception as exc:  # noqa: BLE001 - Redis away: the next beat tries again
                logger.warning("could not advertise this worker: %s: %s",
                               type(exc).__name__, exc)
            self._stopping.wait(ttl / 3)

    def stop(self, parent: Any) -> None:
        """It stops taking runs now (a warm shutdown finishes the running ones): withdraw."""
        self._stopping.set()
        if self._store is not None:
            try:
                withdraw(self._store, self._hostname)
            except Exception as exc:  # noqa: BLE001 - its advertisement ends by itself
                logger.warning("could not withdraw this worker: %s", exc)


def _consumes(app: Any) -> bool:
    """The worker consumes the test-run queue (`-Q` may have left it out)."""
    try:
        return app.settings.queue in app.amqp.queues.consume_from
    except Exception:  # noqa: BLE001 - no selection made: it consumes every queue it knows
        return True


def connect(app: Any) -> None:
    app.steps["worker"].add(LivenessStep)
