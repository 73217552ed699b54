"""The service: everything a caller (the HTTP API, the CLI) can ask of test runs.

A trigger takes the slot and writes the queued record in one Redis round trip — or, by its
`on_conflict`, becomes the pending run, joins the run in progress, or is refused
(worker/client/conflict.py). When the broker is the tracking Redis itself, that same atomic step
pushes the task message (the fused path, worker/client/message.py; a pending run keeps it until
promoted): one round trip, nothing to unwind. Otherwise (RabbitMQ, a broker on another Redis, a
callback_url to attach first) it then publishes the task through kombu (worker/core/publish.py);
if anything at all goes wrong after the slot was taken, the slot is freed and the run is marked
failed (`enqueue_failed`) before the error propagates: no leaked slot, no run left `queued`.
Every method raises only `TestRunError`s (worker/core/errors.py) for what its caller must
answer; an unreachable Redis or broker is `QueueUnavailable`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import workflows
from ..core import gauges, publish, webhooks
from ..core.celery_app import TestRunCelery
from ..core.errors import (
    Dependency,
    Forbidden,
    IdempotencyKeyReused,
    InvalidInput,
    PayloadTooLarge,
    QueueUnavailable,
    RateLimited,
    RunFinished,
    RunInProgress,
    RunNotFound,
    WorkflowNotFound,
    unavailable_on_outage,
)
from ..core.keys import new_run_id
from ..core.lua import Admitted, AlreadyAdmitted, Busy, Joined, Message, Pending
from ..core.runs import Run
from ..core.scopes import Scope
from ..core.status import ConflictPolicy, ReleaseReason, RunStatus
from ..workflows import Workflow
from . import conflict, message, online, stop
from .ratelimit import TriggerRateLimit
from .readiness import Readiness
from .views import LogPage, Triggered, WorkflowState, body_hash
from .watch import START, EventReader, WatchItem, follow, wait_for_end

__all__ = ["ENQUEUE_FAILED_ERROR", "LogPage", "TestRunService", "Triggered", "WorkflowState",
           "body_hash"]

ENQUEUE_FAILED_ERROR = publish.ENQUEUE_FAILED_ERROR


class TestRunService:
    __test__ = False  # not a pytest class

    def __init__(self, celery: TestRunCelery) -> None:
        self.celery = celery
        self.store = celery.store
        self.settings = celery.settings
        self._online = online.OnlineCount(self.store)
        self._rate_limit = TriggerRateLimit(self.store)
        self._events = EventReader(self.store)  # its stream client: built on first use
        # `?wait=`'s own pool: a waiter never holds a connection triggers and reads need
        self._waiters = EventReader(self.store, self.settings.max_waiters, name="waiters")
        self.webhooks = webhooks.install(celery)  # this process's endings are handed over
        self._readiness = Readiness(celery, self.store, self.settings)
        #: the admit script pushes the message itself (the broker is the tracking Redis)
        self.fused = message.fused(self.settings, celery.conf.broker_transport_options)
        self._messages = message.FusedMessages(celery, self.settings)
        #: workflows this process just found held: a reject goes without its message (lazy)
        self._held = conflict.HeldSlots()
        publish.install(celery)  # this process publishes the runs its scripts promote too

    # -- workflows ----------------------------------------------------------------------------
    def known_workflow(self, workflow_id: str) -> Workflow:
        found = workflows.get(workflow_id)
        if found is None:
            raise WorkflowNotFound(workflow_id)
        return found

    def workflows(self) -> list[WorkflowState]:
        """Every registered workflow with the run holding its slot (one pipeline)."""
        known = workflows.all_workflows()
        with unavailable_on_outage():
            slots = self.store.slots([w.id for w in known])
        return [WorkflowState(w, *slots[w.id]) for w in known]

    def workflow(self, workflow_id: str) -> WorkflowState:
        """One workflow with the run holding its slot and its pending run, read in full."""
        found = self.known_workflow(workflow_id)
        with unavailable_on_outage():
            holder, waiting = self.store.slots([found.id])[found.id]
            run = self.store.get(holder) if holder else None
            pending = self.store.get(waiting) if waiting else None
        if pending is not None and pending.terminal:
            waiting, pending = None, None
        return WorkflowState(found, holder, waiting, run, pending)

    # -- runs ---------------------------------------------------------------------------------
    def run(self, run_id: str) -> Run:
        with unavailable_on_outage():
            run = self.store.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    def runs(self, workflow_id: str, limit: int, *, full: bool = False) -> list[Run]:
        """The workflow's newest runs first, as summaries (no input, result or logs) unless
        `full`: a list of 100 full runs could be megabytes built in one thread."""
        with unavailable_on_outage():
            return self.store.list_runs(workflow_id, limit, full=full)

    def logs(self, run_id: str, offset: int, limit: int) -> LogPage:
        """A page of a run's log lines (a run's whole log is also in the run itself)."""
        with unavailable_on_outage():
            page = self.store.log_page(run_id, offset, limit)
        if page is None:
            raise RunNotFound(run_id)
        total, lines = page
        return LogPage(run_id, offset, total, lines)

    def trigger(self, workflow_id: str, input: dict[str, Any], *,
                on_conflict: ConflictPolicy = ConflictPolicy.REJECT,
                idempotency_key: str | None = None, triggered_by: str | None = None,
                rate_key: str | None = None, callback_url: str | None = None) -> Triggered:
        """413 (input too large) → 404 → 422 (the input does not fit the workflow's schema;
        the callback_url may not be called) → 429 (rate_key over TRIGGER_RATE_LIMIT) → 409 →
        422 (the Idempotency-Key admitted another body) → 503. A client's mistake is found
        before anything is taken: no slot, no record, no rate-limit count."""
        input_json = json.dumps(input, separators=(",", ":"), ensure_ascii=False)
        size = len(input_json.encode())
        if size > self.settings.max_input_bytes:
            raise PayloadTooLarge(f"input is {size} bytes as JSON; at most "
                                  f"{self.settings.max_input_bytes} are accepted", field="input")
        workflow = self.known_workflow(workflow_id)
        problems = workflow.input_problems(input)
        if problems:
            raise InvalidInput(workflow_id, [p.to_dict() for p in problems])
        if callback_url is not None:  # the SSRF guard (worker/core/egress.py)
            self.webhooks.check_callback(callback_url)
        if rate_key is not None and self.settings.trigger_rate_limit:
            with unavailable_on_outage():
                wait = self._rate_limit.count(rate_key)
            if wait is not None:
                raise RateLimited(self.settings.trigger_rate_limit, wait)
        run_id: str | None = None
        pushed: Message | None = None
        # a callback_url is attached between the admission and the publish: two steps
        if self.fused and callback_url is None:
            run_id = new_run_id(workflow_id)
            pushed = self._messages(run_id, on_conflict, lazy=self._held.expects(
                workflow_id, on_conflict, idempotency_key))  # a 409 expected: lazy
        # nothing was taken if the script did not run; if it ran and both replies were lost,
        # the queued lease frees the slot (queue timeout + grace)
        with unavailable_on_outage():
            admission = self.store.admit(
                workflow_id, input_json, on_conflict=on_conflict,
                idempotency_key=idempotency_key, triggered_by=triggered_by, run_id=run_id,
                message=pushed, digest=lambda: conflict.digest(input), version=workflow.version)
        if isinstance(admission, Busy):
            self._held.held(workflow_id, admission)
            raise RunInProgress(workflow_id, admission.holder,
                                **conflict.details(admission, self.settings))
        if isinstance(admission, (AlreadyAdmitted, Joined)):
            with unavailable_on_outage():
                run = self.store.get(admission.run_id)
            if run is None:  # only if Redis lost it between two calls
                raise QueueUnavailable(Dependency.REDIS,
                                       LookupError(f"run {admission.run_id} vanished"))
            if isinstance(admission, Joined):
                return Triggered(run, created=False, joined=True)
            if body_hash(run.input) != body_hash(input):
                raise IdempotencyKeyReused(run.run_id)
            return Triggered(run, created=False)
        if admission.previous_release is ReleaseReason.REPLACED and admission.previous_holder:
            # a replaced running run is stopped; the new run is pending until its body is gone
            self._stop(admission.previous_holder)
        self._held.freed(workflow_id)
        if callback_url is not None:
            self._attach(admission, callback_url)
        pending = isinstance(admission, Pending)
        if pushed is None and not pending:
            self._publish(admission)
        return Triggered(Run(run_id=admission.run_id, workflow_id=workflow_id,
                             status=RunStatus.PENDING if pending else RunStatus.QUEUED,
                             created_ms=admission.created_ms, input=input,
                             triggered_by=triggered_by, callback_url=callback_url,
                             workflow_version=workflow.version), created=True)

    def _attach(self, admission: Admitted, callback_url: str) -> None:
        """The run's callback_url, before its message goes out; if Redis fails here the run
        is unwound like a failed publish (no slot held by a run that lost its callback)."""
        try:
            with unavailable_on_outage():
                self.webhooks.attach(admission.run_id, callback_url)
        except QueueUnavailable as exc:
            publish.unwind(self.store, admission.run_id, exc.cause)
            raise

    def watch(self, run_id: str, last_event_id: str | None = None) -> Iterator[WatchItem]:
        """The run's state now, then its events as they are written, then its end (see
        worker/client/watch.py). Raises here, before anything is streamed, for an unknown run (404)
        or an unreachable Redis (503); later outages end the stream."""
        with unavailable_on_outage():
            snap = self.store.snapshot(run_id)
        if snap is None:
            raise RunNotFound(run_id)
        return follow(self._events, snap, last_event_id, self.settings.stream_keepalive)

    def wait(self, run: Run | str, seconds: float, *,
             gone: Callable[[], bool] | None = None) -> Run:
        """The run once it ends, or as it is after `seconds` (or once `gone()`): on the
        waiters' own pool (watch.py). A run id is read first (404, 503); a run just
        triggered is followed from its first event."""
        deadline = time.monotonic() + seconds
        if isinstance(run, str):
            with unavailable_on_outage():
                snap = self.store.snapshot(run)
            if snap is None:
                raise RunNotFound(run)
            current, cursor = snap.run, snap.last_event_id or START
        else:
            current, cursor = run, START
        return wait_for_end(self._waiters, current, cursor, deadline=deadline,
                            slice_s=self.settings.stream_keepalive, gone=gone)

    def _publish(self, admission: Admitted) -> None:
        try:
            publish.publish(self.celery, self.settings, admission.run_id)
        except BaseException as exc:
            unwound = publish.unwind(self.store, admission.run_id, exc)
            if not isinstance(exc, Exception):
                raise
            if unwound is False:
                # the message got out after all (a worker already started the run): it stands
                return
            raise QueueUnavailable(Dependency.BROKER, exc) from exc

    def cancel(self, run_id: str, *, only_by: str | None = None) -> Run:
        """Record the cancel (the source of truth); stop a running run.

        A running run reads `cancelled` at once, but keeps its slot until its worker confirms
        the body stopped (or its lease lapses): then the pending run, if any, takes it. A
        queued run needs no message (its start check refuses it) and frees its slot at once;
        a pending run never held it. Idempotent: a run not terminal when we looked and
        cancelled now (by us, a retry of ours, its worker) answers as a success.
        `only_by`: the caller may cancel only the runs it triggered (it lacks the `cancel`
        scope); another's run is Forbidden, before anything is written."""
        run = self.run(run_id)
        if only_by is not None and run.triggered_by != only_by:
            raise Forbidden(Scope.CANCEL, "cancelling a run another caller triggered")
        if run.terminal:
            self._stop_if_stopping(run)  # a retry: the first call's stop may have been lost
            raise RunFinished(run)
        try:
            with unavailable_on_outage():
                run = self.store.cancel(run_id)
        except RunFinished as exc:
            if exc.run.status is not RunStatus.CANCELLED:
                raise
            run = exc.run  # a retry of ours, or another's cancel: stopping again is harmless
        self._stop_if_stopping(run)
        return run

    def _stop_if_stopping(self, run: Run) -> None:
        """Stop the body of a run cancelled while running, after the record: the worker's
        confirmation that a body is gone frees only a terminal run's slot (a kill that landed
        first left it to the lease). A run cancelled while queued never executes."""
        if (run.status is RunStatus.CANCELLED and run.started_ms is not None
                and run.released_ms is None):
            self._stop(run.run_id)

    def _stop(self, run_id: str) -> None:
        """Best effort and bounded (about TEST_RUN_IO_TIMEOUT): a stop can be lost, and the
        heartbeat then kills the process within an interval."""
        stop.send_stop(self.celery, run_id, timeout=self.settings.io_timeout)

    # -- workers ------------------------------------------------------------------------------
    def workers_online(self) -> int | None:
        """Workers consuming the test-run queue, as read at most a second ago (None: Redis
        could not be read). A run triggered while this is 0 waits in the queue: it starts if
        a worker comes within TEST_RUN_QUEUE_TIMEOUT, else it ends `expired`."""
        return self._online.get()

    def live_state(self) -> gauges.Live:
        """Slots held, holders by status and the oldest one's age, workers online and Redis'
        eviction policy, over the registered workflows (the metrics' gauges; two pipelined
        round trips, no SCAN)."""
        return gauges.live_state(self.store, [w.id for w in workflows.all_workflows()])

    # -- health -------------------------------------------------------------------------------
    def readiness(self) -> dict[Dependency, str]:
        """`ok` or why not, for Redis and for the broker; cached per process (a second or
        so) and one PING per check, so `/readyz` is cheap however often it is asked
        (worker/client/readiness.py)."""
        return self._readiness.check()
