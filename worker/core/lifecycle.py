"""Lifecycle hooks: one method per thing that happens to a test run, with typed arguments.

The store, the service, the signal handlers and the heartbeat call `lifecycle.<event>(…)`;
subscribers (logging here, metrics next) implement the methods they care about. A subscriber
that raises never breaks the lifecycle: the error is logged and the next subscriber runs.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

from .status import DeliveryOutcome, ErrorType, ReleaseReason, RunStatus, WebhookTarget

logger = logging.getLogger("worker.lifecycle")


class LifecycleHooks:
    """The interface: every method a no-op, so a subscriber overrides only what it needs."""

    def admitted(self, run_id: str, workflow_id: str, *, triggered_by: str | None = None,
                 pending: bool = False) -> None:
        """A trigger took the slot and wrote the queued record (`triggered_by`: the caller's
        token name, when it has one), or (`pending`) made it the workflow's pending run."""

    def superseded(self, run_id: str, workflow_id: str, by_run_id: str) -> None:
        """The pending run `run_id` ended superseded by `by_run_id` (a newer queue trigger)."""

    def joined(self, run_id: str, workflow_id: str) -> None:
        """A trigger with on_conflict=join was answered with `run_id` (same input, version)."""

    def promoted(self, run_id: str, workflow_id: str) -> None:
        """The pending run took the freed slot (in the step that freed it) and is queued."""

    def conflict(self, run_id: str, workflow_id: str) -> None:
        """A trigger found `run_id` holding the slot (409)."""

    def took_over(self, run_id: str, workflow_id: str, by_run_id: str,
                  reason: ReleaseReason) -> None:
        """`by_run_id` took the slot from `run_id` (RECLAIMED: it had ended; REPLACED)."""

    def enqueue_failed(self, run_id: str, workflow_id: str, error: str) -> None:
        """The publish failed after the slot was taken; the slot is being freed."""

    def started(self, run_id: str, workflow_id: str, worker: str, *,
                queue_wait_s: float | None = None) -> None:
        """The start check passed: the body is about to run (`queue_wait_s`: how long the run
        waited between admission and this start)."""

    def refused(self, run_id: str, workflow_id: str, status: RunStatus | None) -> None:
        """A delivered message must not execute (status None: no record)."""

    def finished(self, run_id: str, workflow_id: str, status: RunStatus,
                 error_type: ErrorType | None, *, duration_s: float | None = None) -> None:
        """The run became terminal: raised exactly once per run, by whichever call ended it (an
        outcome, a cancel, a replace, an operator, or a script that settled a lapsed lease or a
        queue timeout). `duration_s`: from its start to its end (None: it never started)."""

    def released(self, run_id: str, workflow_id: str, reason: ReleaseReason) -> None:
        """The run's slot was freed, and `reason` recorded on it: by its outcome, a cancel, a
        reclaim or replace by a trigger, an operator, or found lapsed (LEASE_EXPIRED)."""

    def ended(self, run_id: str, workflow_id: str, status: RunStatus,
              error_type: ErrorType | None, reason: ReleaseReason, *,
              duration_s: float | None = None) -> None:
        """`finished` and `released` (for `reason`) recorded by one step, as most endings are:
        by default both, in that order, so a subscriber that counts them apart need not
        override it; the log tells both on one line."""
        self.finished(run_id, workflow_id, status, error_type, duration_s=duration_s)
        self.released(run_id, workflow_id, reason)

    def cancelled(self, run_id: str, workflow_id: str) -> None:
        """A cancel was recorded (its slot is free)."""

    def stopped(self, run_id: str, workflow_id: str, pid: int, why: str) -> None:
        """The worker killed a run's process: it ended over its head, or it was fenced."""

    def forced(self, run_id: str, workflow_id: str, reason: ReleaseReason) -> None:
        """An operator freed the slot `run_id` held."""

    def renewed(self, run_id: str, workflow_id: str, reacquired: bool) -> None:
        """The heartbeat renewed a running run's lease (`reacquired`: it had lapsed and the slot
        was free, so it was taken back). Logged at DEBUG: one every third of the TTL per run."""

    def fenced(self, run_id: str, workflow_id: str, pid: int, why: str) -> None:
        """The heartbeat could not renew the lease in time and killed the run's process before
        the lease lapsed (the run reads `lost`)."""

    def webhook_attempted(self, run_id: str, workflow_id: str, target: WebhookTarget,
                          attempt: int, outcome: DeliveryOutcome, *,
                          status_code: int | None = None, error: str | None = None) -> None:
        """One attempt to deliver the run's ending to `target` (worker/runner/delivery.py):
        the receiver's status code, or the error (never the secret)."""


class LogHooks(LifecycleHooks):
    """Every lifecycle event as one INFO line on `worker.lifecycle`: `test run <event> k=v …`,
    with `event` and every argument also on the record (`extra`) for structured handlers.
    Its methods are generated from LifecycleHooks below, so a new event is logged as is.
    Events in QUIET are logged at DEBUG: `renewed` (routine, many per run) and `conflict` (a
    409: every click while a run is in progress; a line each would cost the refusal more than
    its answer; `testrun_conflicts_total{workflow}` counts them). `ended` is the `finished`
    line with the slot's `release_reason` (no `released` line of its own)."""

    QUIET = frozenset({"renewed", "conflict"})

    def ended(self, run_id: str, workflow_id: str, status: RunStatus,
              error_type: ErrorType | None, reason: ReleaseReason, *,
              duration_s: float | None = None) -> None:
        """One line, the `finished` one with the slot's `release_reason`: a run's ending costs
        the worker one line, not two (its `released` is the same step's)."""
        self.log("finished", run_id=run_id, workflow_id=workflow_id, status=status,
                 error_type=error_type, duration_s=duration_s, release_reason=reason)

    def log(self, event: str, **fields: Any) -> None:
        level = logging.DEBUG if event in self.QUIET else logging.INFO
        if not logger.isEnabledFor(level):
            return
        details = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
        logger.log(level, "test run %s %s", event, details, extra={"event": event, **fields})


class Lifecycle(LifecycleHooks):
    """Fans each event out to every subscriber, in order; one that raises is logged."""

    def __init__(self, *subscribers: LifecycleHooks) -> None:
        self._subscribers: list[LifecycleHooks] = list(subscribers)

    def subscribe(self, subscriber: LifecycleHooks) -> None:
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: LifecycleHooks) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)


def _log_event(name: str) -> Any:
    params = list(inspect.signature(getattr(LifecycleHooks, name)).parameters)[1:]

    def log(self: LogHooks, *args: Any, **kwargs: Any) -> None:
        self.log(name, **dict(zip(params, args, strict=False)), **kwargs)

    return log


def _fan_out(name: str) -> Any:
    def dispatch(self: Lifecycle, *args: Any, **kwargs: Any) -> None:
        for subscriber in list(self._subscribers):
            try:
                getattr(subscriber, name)(*args, **kwargs)
            except Exception:  # noqa: BLE001 - a subscriber never breaks the lifecycle
                logger.exception("lifecycle subscriber %r failed on %s", subscriber, name)

    dispatch.__name__ = name
    dispatch.__doc__ = getattr(LifecycleHooks, name).__doc__
    return dispatch


EVENTS = [name for name, member in vars(LifecycleHooks).items()
          if callable(member) and not name.startswith("_")]
for _name in EVENTS:
    if _name not in vars(LogHooks):  # its own (`ended`) stays
        setattr(LogHooks, _name, _log_event(_name))
    setattr(Lifecycle, _name, _fan_out(_name))

#: The process's lifecycle: logging is always subscribed; metrics (worker/core/metrics.py
#: MetricsHooks) subscribe in the web app and the Celery worker.
lifecycle = Lifecycle(LogHooks())
