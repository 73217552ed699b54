"""A warm shutdown's drain, bounded: how long a worker that was told to stop (SIGTERM, a deploy)
waits for its running runs before it stops them itself.

Celery's warm shutdown waits for running tasks without end (its `worker_soft_shutdown_timeout`
only applies to a cold shutdown, and then sleeps out the whole timeout whenever a task is
active), while the heartbeat keeps their leases alive: a 600-second run would hold the deploy
for ten minutes, until the process manager's SIGKILL makes it `lost`. So the heartbeat thread
(worker/runner/heartbeat.py), which keeps renewing through the drain, asks this class when the
drain is over: TEST_RUN_SHUTDOWN_GRACE after the SIGTERM (Celery's `worker_shutting_down`,
sent from the signal handler; closing the consumer takes 1–2 s more before the heartbeat step
is stopped). Each run still running then is
recorded in worker/runner/stops.py (`StopKind.SHUTDOWN`) and its process killed; the signal
handler that sees the kill records it `cancelled`, `worker_shutdown`, and frees its slot.
Queued runs are not this worker's: a worker takes a message only when a process is free
(`worker_disable_prefetch`), so they stay in the queue for the next worker.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.signals import worker_shutting_down

logger = logging.getLogger(__name__)

#: when this process was told to shut down warm (time.monotonic()), or None
_told_at: float | None = None


def _on_shutting_down(how: str = "", **_: Any) -> None:
    global _told_at
    if how == "Warm" and _told_at is None:
        _told_at = time.monotonic()


worker_shutting_down.connect(_on_shutting_down, weak=False)


class Drain:
    """The drain's deadline, from the moment the warm shutdown stopped the heartbeat step."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self._deadline: float | None = None

    def begin(self, running: int) -> None:
        """The heartbeat step is being stopped: the drain runs from the SIGTERM."""
        self._deadline = (_told_at or time.monotonic()) + self.grace
        if running:
            logger.warning("warm shutdown: waiting up to %gs (TEST_RUN_SHUTDOWN_GRACE) for %d "
                           "running test run(s); then they are stopped", self.grace, running)

    @property
    def started(self) -> bool:
        return self._deadline is not None

    def over(self) -> bool:
        """The drain time has run out: stop what still runs."""
        return self._deadline is not None and time.monotonic() >= self._deadline

    def wait(self, interval: float) -> float:
        """How long the heartbeat may sleep: its interval, but never past the deadline; once
        it has passed, a quarter second (the stopped runs leave, a late starter is stopped)."""
        if self._deadline is None:
            return interval
        left = self._deadline - time.monotonic()
        return min(interval, left if left > 0 else 0.25)

    def why(self) -> str:
        return (f"its worker shut down (a deploy or a restart) and the run was still running "
                f"after the drain time, TEST_RUN_SHUTDOWN_GRACE={self.grace:g}s")
