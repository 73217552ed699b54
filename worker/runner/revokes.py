"""Runs revoked from outside (Flower's "revoke", `celery control revoke`) end at once, and a
revoke near a run's queue timeout has one answer.

Celery keeps a revoke of a queued task in the worker's memory (`celery.worker.state.revoked`)
and acts on it only when a pool process is free to take the message; until then the run would
hold its workflow's slot (measured: held while every pool process was busy). The heartbeat
thread in the worker's main process, where the revoke command lands, calls `end_queued` every
heartbeat interval: each newly revoked run that is still queued is ended through finish.lua
(QUEUED_ONLY mode: a run that started goes on, as Celery's own revoke without terminate leaves
it; a late message is refused by the start check).

Celery puts the runs it expires (a message pulled after its `expires` header) in the same set,
and a revoke can land in a run's last milliseconds, so the heartbeat's sweep, Celery discarding
a revoked message and Celery expiring it could each record the run first, some `cancelled` and
some `expired`. `end_revoked` settles it for all three (signals.py's on_revoked calls it too):
a revoked queued run reads **`cancelled` if more than EXPIRY_MARGIN_S of its queue time was
left, by Redis' clock, when its end is recorded; otherwise `expired`** — what Celery's expiry
says of the same message, whose `expires` the web computed a few milliseconds before Redis
stamped `created_ms` (the margin also absorbs a web/worker clock skew under a second).

The service's own cancel and replace never revoke (they record the end and send
`stop_test_run`), so what lands here is someone else's revoke.
"""

from __future__ import annotations

import logging

from celery.worker import state

from ..core.keys import workflow_of
from ..core.status import ErrorType, ReleaseReason, RunStatus
from ..core.store import RunStore

logger = logging.getLogger(__name__)

REVOKED_ERROR = "revoked while queued"
#: a revoked queued run with no more queue time left than this reads `expired`
EXPIRY_MARGIN_S = 1.0
EXPIRED_ERROR = ("revoked with under a second of its queue time left: recorded as expired, "
                 "as Celery's own expiry of its message would")


def end_revoked(store: RunStore, run_id: str) -> bool:
    """End a revoked run that is still queued: `cancelled`, or `expired` when its queue time
    is (all but) over by Redis' clock. True if this call ended it."""
    run = store.get(run_id)
    if run is None or run.status is not RunStatus.QUEUED:
        return False
    seconds, micros = store.connection.redis.time()
    now_ms = seconds * 1000 + micros // 1000
    left_s = store.settings.queue_timeout - (now_ms - (run.created_ms or now_ms)) / 1000
    if left_s <= EXPIRY_MARGIN_S:
        return store.finish(run_id, RunStatus.EXPIRED, error_type=ErrorType.QUEUE_TIMEOUT,
                            error=EXPIRED_ERROR, reason=ReleaseReason.EXPIRED,
                            only_if_queued=True)
    return store.finish(run_id, RunStatus.CANCELLED, error_type=ErrorType.CANCELLED,
                        error=REVOKED_ERROR, reason=ReleaseReason.CANCELLED,
                        only_if_queued=True)


class RevokedRuns:
    def __init__(self) -> None:
        self._seen: set[str] = set()  # revoked ids already handled (pruned with Celery's set)

    def end_queued(self, store: RunStore) -> list[str]:
        """End every newly revoked run that is still queued; the run ids it ended."""
        try:
            revoked = set(state.revoked)
        except RuntimeError:  # changed while copied: the next beat tries again
            return []
        self._seen &= revoked  # Celery's set is bounded (LimitedSet): so is ours
        ended = []
        for run_id in revoked - self._seen:
            if workflow_of(run_id) is None:  # not a test run
                self._seen.add(run_id)
                continue
            try:
                if end_revoked(store, run_id):
                    ended.append(run_id)
                    logger.info("test run %s: revoked while queued; ended, slot freed", run_id)
                self._seen.add(run_id)
            except Exception as exc:  # noqa: BLE001 - Redis away: the next beat tries again
                logger.warning("could not end revoked test run %s: %s", run_id, exc)
        return ended
