"""Trigger and cancel: the producer side of a test run, shared by the web API and the CLI.

A trigger takes the slot and writes the queued record in one Redis round trip, then publishes
the task. If anything at all goes wrong after the slot was taken, the slot is freed and the run
is marked failed (`enqueue_failed`) before the error propagates: no leaked slot, no run left
`queued`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import redis

from .app import TASK_NAME, TestRunCelery
from .events import Event, emit
from .runs import Run
from .status import ErrorType, ReleaseReason, RunStatus
from .tracker import Admission, RunFinished, RunNotFound

logger = logging.getLogger(__name__)


class TriggerError(Exception):
    """Base of the trigger errors; each carries what the caller needs to answer."""


class WorkflowNotFound(TriggerError):
    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow {workflow_id!r}")
        self.workflow_id = workflow_id


class RunInProgress(TriggerError):
    def __init__(self, workflow_id: str, run_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} already has test run {run_id} in progress")
        self.workflow_id = workflow_id
        self.run_id = run_id


class QueueUnavailable(TriggerError):
    """Redis or the broker could not be reached (or refused the publish); `what` is
    "redis" or "broker"."""

    def __init__(self, what: str, cause: BaseException) -> None:
        super().__init__(f"{what} is unavailable: {type(cause).__name__}: {cause}")
        self.what = what
        self.cause = cause


@dataclass(frozen=True)
class Triggered:
    run: Run
    created: bool  # False when an idempotency key returned an earlier run


class TestRunService:
    __test__ = False  # not a pytest class

    def __init__(self, celery: TestRunCelery) -> None:
        self.celery = celery
        self.tracker = celery.tracker
        self.settings = celery.settings

    def trigger(self, workflow_id: str, input: dict[str, Any], *, on_conflict: str = "reject",
                idempotency_key: str | None = None) -> Triggered:
        from . import workflows

        if workflows.get(workflow_id) is None:
            raise WorkflowNotFound(workflow_id)
        try:
            admission = self.tracker.admit(workflow_id, input, on_conflict=on_conflict,
                                           idempotency_key=idempotency_key)
        except (redis.RedisError, OSError) as exc:
            # nothing was taken if the script did not run; if it ran and both replies were
            # lost, the queued lease frees the slot (queue timeout + grace)
            raise QueueUnavailable("redis", exc) from exc
        if admission.outcome == "conflict":
            raise RunInProgress(workflow_id, admission.run_id)
        if admission.outcome == "existing":
            run = self._read(admission.run_id)
            return Triggered(run, created=False)
        if admission.displaced_how == "replaced" and admission.displaced:
            # before the new run is published, so the kill has a head start on its start
            self._revoke(admission.displaced)
        self._publish(admission)
        assert admission.run is not None
        return Triggered(admission.run, created=True)

    def _publish(self, admission: Admission) -> None:
        settings = self.settings
        try:
            self.celery.send_task(
                TASK_NAME, args=[admission.run_id], task_id=admission.run_id,
                queue=settings.queue, expires=settings.queue_timeout,
                time_limit=settings.time_limit, soft_time_limit=settings.soft_time_limit,
                ignore_result=True, retry=False,
            )
        except BaseException as exc:
            unwound = self._unwind(admission.run_id, exc)
            if not isinstance(exc, Exception):
                raise
            if unwound is False:
                # the message got out after all (a worker already started the run): it stands
                return
            raise QueueUnavailable("broker", exc) from exc

    def _unwind(self, run_id: str, exc: BaseException) -> bool | None:
        """Mark the run failed and free its slot — only while it is still queued, since a
        publish can raise after the message reached the broker. None if Redis is away too."""
        emit(Event.ENQUEUE_FAILED, run_id=run_id, error=f"{type(exc).__name__}: {exc}")
        try:
            return self.tracker.finish(
                run_id, RunStatus.FAILED, error_type=ErrorType.ENQUEUE_FAILED,
                error=f"could not enqueue: {type(exc).__name__}: {exc}",
                reason=ReleaseReason.PUBLISH_FAILED, only_if_queued=True)
        except Exception:  # noqa: BLE001 - Redis also away: the queued lease frees the slot
            logger.exception("could not release the slot of %s after a failed publish", run_id)
            return None

    def _read(self, run_id: str) -> Run:
        run = self.tracker.get(run_id)
        if run is None:  # only if Redis lost it between two calls
            raise QueueUnavailable("redis", LookupError(f"run {run_id} vanished"))
        return run

    def cancel(self, run_id: str) -> Run:
        """Record the cancel (the source of truth) and free the slot, and revoke.

        A running run is revoked first, so the kill is on its way before the slot is free.
        Cancelling is idempotent: a run that was not terminal when we looked and is cancelled
        now (by us, a retry of ours, or its own task_revoked) answers as a success."""
        run = self.tracker.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        if run.terminal:
            raise RunFinished(run)
        revoked = run.status is RunStatus.RUNNING
        if revoked:
            self._revoke(run_id)
        try:
            run = self.tracker.cancel(run_id)
        except RunFinished as exc:
            if exc.run.status is not RunStatus.CANCELLED:
                raise
            run = exc.run
        if not revoked:
            self._revoke(run_id)
        return run

    def _revoke(self, run_id: str) -> None:
        # best effort: revokes live in worker memory only and are lost when no worker is up;
        # the task's start check and the heartbeat enforce the cancel anyway
        try:
            self.celery.control.revoke(run_id, terminate=True, signal="SIGKILL")
        except Exception as exc:  # noqa: BLE001
            logger.warning("revoke of %s not sent (%s); the run record still holds", run_id,
                           exc)
