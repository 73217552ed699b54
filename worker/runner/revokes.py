"""Runs revoked from outside (Flower's "revoke", `celery control revoke`) end at once.

Celery keeps a revoke of a queued task in the worker's memory (`celery.worker.state.revoked`)
and acts on it only when a pool process is free to take the message; until then the run would
hold its workflow's slot (measured: held while every pool process was busy). The heartbeat
thread in the worker's main process, where the revoke command lands, calls `end_queued` every
heartbeat interval: each newly revoked run that is still queued is recorded `cancelled` and its
slot freed through finish.lua (QUEUED_ONLY mode: a run that started goes on, as Celery's own
revoke without terminate leaves it; a late message is refused by the start check).

The service's own cancel and replace never revoke (they record the end and send
`stop_test_run`), so what lands here is someone else's revoke. A run past its queue timeout is
left to the expiry path (Celery puts expired tasks in the same set), so it reads `expired`.
"""

from __future__ import annotations

import logging
import time

from celery.worker import state

from ..core.keys import workflow_of
from ..core.status import ErrorType, ReleaseReason, RunStatus
from ..core.store import RunStore

logger = logging.getLogger(__name__)

REVOKED_ERROR = "revoked while queued"


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
                if self._end(store, run_id):
                    ended.append(run_id)
                self._seen.add(run_id)
            except Exception as exc:  # noqa: BLE001 - Redis away: the next beat tries again
                logger.warning("could not end revoked test run %s: %s", run_id, exc)
        return ended

    @staticmethod
    def _end(store: RunStore, run_id: str) -> bool:
        run = store.get(run_id)
        if run is None or run.status is not RunStatus.QUEUED:
            return False
        if run.created_ms and time.time() * 1000 - run.created_ms > \
                store.settings.queue_timeout * 1000:
            return False  # Celery revoked it for its expiry: the expiry path records that
        ended = store.finish(run_id, RunStatus.CANCELLED, error_type=ErrorType.CANCELLED,
                             error=REVOKED_ERROR, reason=ReleaseReason.CANCELLED,
                             only_if_queued=True)
        if ended:
            logger.info("test run %s: revoked while queued; recorded cancelled, slot freed",
                        run_id)
        return ended
