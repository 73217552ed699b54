"""Celery signals → the run's outcome and the release of its slot.

Handlers run in the pool child (success, exception, soft limit) or in the worker's main process
(hard limit, killed child, revoke). They never raise: Celery would log and swallow it anyway,
and a lifecycle hook must not crash the worker. Every call is idempotent: on a hard time limit
Celery 5.7 sends task_failure twice, the second time with `sender.request.id` None.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from celery.signals import task_failure, task_retry, task_revoked, task_success

from . import heartbeat
from .status import ErrorType, ReleaseReason, RunStatus
from .tasks import InvalidResult, WorkflowUnavailable

logger = logging.getLogger(__name__)
_connected = False


def _ours(sender: Any) -> bool:
    from .app import TASK_NAME

    return getattr(sender, "name", None) == TASK_NAME and hasattr(sender.app, "tracker")


def _finish(sender: Any, run_id: str | None, status: RunStatus, **fields: Any) -> None:
    if not run_id:
        logger.error("test run outcome %s without a run id; the lease will free its slot",
                     status.value)
        return
    try:
        sender.app.tracker.finish(run_id, status, **fields)
    except Exception:  # noqa: BLE001 - never crash the worker; the lease is the backstop
        logger.exception("could not record %s for test run %s", status.value, run_id)


def classify(exc: BaseException | None, settings: Any) -> tuple[RunStatus, ErrorType, str,
                                                                   ReleaseReason]:
    """Map how a run ended to (status, error_type, error, release reason)."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return (RunStatus.TIMED_OUT, ErrorType.TIMEOUT,
                f"exceeded the soft time limit of {settings.soft_time_limit:g}s",
                ReleaseReason.TIMED_OUT)
    if isinstance(exc, TimeLimitExceeded):
        return (RunStatus.TIMED_OUT, ErrorType.TIMEOUT,
                f"killed at the hard time limit of {settings.time_limit:g}s",
                ReleaseReason.TIMED_OUT)
    if isinstance(exc, WorkerLostError):
        return (RunStatus.FAILED, ErrorType.WORKER_LOST,
                f"the process running it died: {exc}", ReleaseReason.WORKER_LOST)
    if isinstance(exc, WorkflowUnavailable):
        return RunStatus.FAILED, ErrorType.WORKFLOW_NOT_FOUND, str(exc), ReleaseReason.FAILED
    if isinstance(exc, InvalidResult):
        return RunStatus.FAILED, ErrorType.INVALID_RESULT, str(exc), ReleaseReason.FAILED
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "failed"
    return RunStatus.FAILED, ErrorType.ERROR, text, ReleaseReason.FAILED


def on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    if _ours(sender):
        _finish(sender, sender.request.id, RunStatus.SUCCEEDED, result=result)


def _kill_hung_child(sender: Any, run_id: str | None) -> None:
    """On a hard time limit Celery sends task_failure *before* billiard kills the child
    (TERM, 0.1 s, then KILL): kill it first, so the slot is never free while the body runs."""
    if not run_id:
        return
    try:
        pid = sender.app.tracker.pid_of(run_id)
        if pid and _is_our_child(pid):
            os.kill(pid, signal.SIGKILL)
    except Exception:  # noqa: BLE001 - billiard still kills it a moment later
        logger.exception("could not kill the hung process of test run %s", run_id)


def _is_our_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False


def _fenced(sender: Any, run_id: str | None) -> bool:
    """Our heartbeat killed this run because Redis was away too long to keep its lease."""
    why = heartbeat.fenced.pop(run_id, None) if run_id else None
    if why is None:
        return False
    _finish(sender, run_id, RunStatus.LOST, error_type=ErrorType.HEARTBEAT_LOST,
            error=f"stopped by its worker: {why}", reason=ReleaseReason.LEASE_EXPIRED)
    return True


def on_failure(sender: Any = None, task_id: str | None = None,
               exception: BaseException | None = None, **_: Any) -> None:
    if _ours(sender) and not _fenced(sender, task_id or sender.request.id):
        if isinstance(exception, TimeLimitExceeded):
            _kill_hung_child(sender, task_id or sender.request.id)
        status, etype, error, reason = classify(exception, sender.app.settings)
        _finish(sender, task_id or sender.request.id, status, error_type=etype, error=error,
                reason=reason)


def on_revoked(sender: Any = None, request: Any = None, terminated: bool = False,
               expired: bool = False, **_: Any) -> None:
    if not _ours(sender):
        return
    run_id = getattr(request, "id", None) or getattr(request, "task_id", None)
    if _fenced(sender, run_id):
        return
    if expired:
        # only a run still queued expires: this may be a late duplicate of a started run
        _finish(sender, run_id, RunStatus.EXPIRED, error_type=ErrorType.QUEUE_TIMEOUT,
                error="waited longer than the queue timeout for a worker",
                reason=ReleaseReason.EXPIRED, only_if_queued=True)
    else:
        # cancel already recorded this (and freed the slot) before it revoked; this covers a
        # revoke sent by someone else, e.g. from Flower. Without terminate, a running body
        # goes on, so only a queued run (or a killed process) ends as cancelled.
        _finish(sender, run_id, RunStatus.CANCELLED, error_type=ErrorType.CANCELLED,
                error="revoked" + (" while running" if terminated else " while queued"),
                reason=ReleaseReason.CANCELLED, only_if_queued=not terminated)


def on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    """A cold shutdown (SIGQUIT) sends task_retry for the run it interrupts; nothing re-runs
    it (early ack), so this is its end."""
    if _ours(sender):
        _finish(sender, getattr(request, "id", None), RunStatus.FAILED,
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
