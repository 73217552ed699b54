"""Celery signals → the run's outcome and the release of its slot.

Handlers run in the pool child (success, exception, soft limit) or in the worker's main process
(hard limit, killed child, revoke). They never raise: Celery would log and swallow it anyway,
and a lifecycle hook must not crash the worker. Every call is idempotent: on a hard time limit
Celery 5.7 sends task_failure twice, the second time with `sender.request.id` None.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_failure, task_retry, task_revoked, task_success

from ..core.celery_app import TASK_NAME
from ..core.status import ErrorType, ReleaseReason, RunStatus
from ..core.store import RunStore
from .outcomes import classify
from .revokes import end_revoked
from .stops import StopKind, Stops

logger = logging.getLogger(__name__)
_connected = False


def _store(sender: Any) -> RunStore | None:
    """The run store of a test-run task's app; None for any other task."""
    if getattr(sender, "name", None) != TASK_NAME:
        return None
    return getattr(sender.app, "store", None)


def _finish(store: RunStore, run_id: str | None, status: RunStatus, **fields: Any) -> None:
    if not run_id:
        logger.error("test run outcome %s without a run id; the lease will free its slot",
                     status.value)
        return
    try:
        store.finish(run_id, status, **fields)
    except Exception:  # noqa: BLE001 - never crash the worker; the lease is the backstop
        logger.exception("could not record %s for test run %s", status.value, run_id)


def on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    store = _store(sender)
    if store is not None:
        _finish(store, sender.request.id, RunStatus.SUCCEEDED, result=result)


def _stopped(sender: Any, store: RunStore, run_id: str | None,
             exception: BaseException | None = None) -> bool:
    """Record the end of a run whose process this worker stopped itself (worker/runner/
    stops.py says why: fenced → lost; on request → cancelled; its drain ran out at a
    shutdown → cancelled, worker_shutdown); True if it did. A kill surfaces as a lost worker
    or as a revoke (terminated): both ask. A hard time limit's hung process is killed there
    first, then classified as usual (False)."""
    stops: Stops | None = getattr(sender.app, "stops", None)
    if stops is None:
        return False
    stop = stops.take(run_id, exception)
    if stop is None or stop.kind is StopKind.TIME_LIMIT:
        return False
    if stop.kind is StopKind.FENCED:
        # our heartbeat killed it: Redis was away too long to keep its lease
        _finish(store, run_id, RunStatus.LOST, error_type=ErrorType.HEARTBEAT_LOST,
                error=f"stopped by its worker: {stop.why}", reason=ReleaseReason.LEASE_EXPIRED)
    elif stop.kind is StopKind.SHUTDOWN:
        # a deploy: the worker could not wait for it any longer (worker/runner/drain.py)
        _finish(store, run_id, RunStatus.CANCELLED, error_type=ErrorType.WORKER_SHUTDOWN,
                error=stop.why, reason=ReleaseReason.WORKER_SHUTDOWN)
    else:
        # killed on request (a cancel, a replace, an operator), which surfaces as a lost
        # worker: record what it is; the cancel has usually recorded it already
        _finish(store, run_id, RunStatus.CANCELLED, error_type=ErrorType.CANCELLED,
                error=stop.why, reason=ReleaseReason.CANCELLED)
    return True


def on_failure(sender: Any = None, task_id: str | None = None,
               exception: BaseException | None = None, **_: Any) -> None:
    store = _store(sender)
    if store is None:
        return
    run_id = task_id or sender.request.id
    if _stopped(sender, store, run_id, exception):
        return
    outcome = classify(exception, store.settings)
    _finish(store, run_id, outcome.status, error_type=outcome.error_type, error=outcome.error,
            reason=outcome.reason)


def on_revoked(sender: Any = None, request: Any = None, terminated: bool = False,
               expired: bool = False, **_: Any) -> None:
    store = _store(sender)
    if store is None:
        return
    run_id = getattr(request, "id", None) or getattr(request, "task_id", None)
    if _stopped(sender, store, run_id):
        return
    if expired:
        # only a run still queued expires: this may be a late duplicate of a started run
        _finish(store, run_id, RunStatus.EXPIRED, error_type=ErrorType.QUEUE_TIMEOUT,
                error="waited longer than the queue timeout for a worker",
                reason=ReleaseReason.EXPIRED, only_if_queued=True)
    elif terminated:
        # a revoke with terminate sent by someone else (the service's cancel records the end
        # itself and never revokes): its process was killed, so the run ends here
        _finish(store, run_id, RunStatus.CANCELLED, error_type=ErrorType.CANCELLED,
                error="revoked while running", reason=ReleaseReason.CANCELLED)
    elif run_id:
        # a queued run revoked from outside (Flower) whose message a worker discarded: the
        # same answer as the heartbeat's sweep gives it (worker/runner/revokes.py)
        try:
            end_revoked(store, run_id)
        except Exception:  # noqa: BLE001 - never crash the worker; the lease is the backstop
            logger.exception("could not record the revoke of test run %s", run_id)


def on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    """A cold shutdown (SIGQUIT) sends task_retry for the run it interrupts; nothing re-runs
    it (on RabbitMQ its unacked delivery comes back, and the start check refuses it), so this
    is its end."""
    store = _store(sender)
    if store is not None:
        _finish(store, getattr(request, "id", None), RunStatus.FAILED,
                error_type=ErrorType.WORKER_LOST,
                error=f"the worker shut down mid-run: {reason}",
                reason=ReleaseReason.WORKER_LOST)


def connect() -> None:
    global _connected
    if _connected:
        return
    task_success.connect(on_success, weak=False)
    task_failure.connect(on_failure, weak=False)
    task_revoked.connect(on_revoked, weak=False)
    task_retry.connect(on_retry, weak=False)
    _connected = True
