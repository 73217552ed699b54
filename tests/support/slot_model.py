"""The plain model of the slot state machine: what every Lua script must answer and leave
behind, written in ordinary Python from the scripts' documented contracts (their headers in
worker/core/lua/ and the run table in docs/api.md), with no Redis in it.

tests/model/test_slot_machine.py applies each step to this model and to the real scripts on a
private Redis and compares both the replies and the state after the step. The model knows what
it let Redis lose (a deleted record, an empty restart), so it also says what cannot be known.

Names: a "process" is `(worker, pid)`; a "body" is a process that was answered STARTED and
executes the run until an outcome is recorded or its heartbeat stops it (or its lease lapses:
fencing kills a body before its lease can lapse, and a dead worker's bodies are gone). A
pending run (on_conflict=queue, or a replace of a holder with a body) waits for the slot with
no message out; `enqueued` is every run whose message went out (pushed by admit.lua or by the
promotion in release()).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from worker.core.status import (
    ENDED_OVER_ITS_HEAD,
    TERMINAL,
    ConflictPolicy,
    ErrorType,
    ReleaseReason,
    RunStatus,
)

Process = tuple[str, int]

LIVE = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})

#: every (error_type, release_reason) a run of each status may carry; None = field absent.
#: A release_reason is absent when the slot was already gone when the run ended.
AGREES: dict[RunStatus, tuple[frozenset[ErrorType | None], frozenset[ReleaseReason | None]]] = {
    RunStatus.PENDING: (frozenset({None}), frozenset({None})),
    RunStatus.QUEUED: (frozenset({None}), frozenset({None})),
    RunStatus.RUNNING: (frozenset({None}), frozenset({None})),
    RunStatus.SUCCEEDED: (frozenset({None}), frozenset({None, ReleaseReason.SUCCEEDED})),
    RunStatus.FAILED: (
        frozenset({ErrorType.ERROR, ErrorType.WORKER_LOST, ErrorType.ENQUEUE_FAILED,
                   ErrorType.WORKFLOW_NOT_FOUND, ErrorType.INVALID_RESULT}),
        frozenset({None, ReleaseReason.FAILED, ReleaseReason.WORKER_LOST,
                   ReleaseReason.PUBLISH_FAILED})),
    RunStatus.TIMED_OUT: (frozenset({ErrorType.TIMEOUT}),
                          frozenset({None, ReleaseReason.TIMED_OUT})),
    RunStatus.CANCELLED: (frozenset({ErrorType.CANCELLED, ErrorType.WORKER_SHUTDOWN}),
                          frozenset({None, ReleaseReason.CANCELLED, ReleaseReason.REPLACED,
                                     ReleaseReason.FORCED, ReleaseReason.WORKER_SHUTDOWN})),
    RunStatus.EXPIRED: (frozenset({ErrorType.QUEUE_TIMEOUT, ErrorType.PENDING_TIMEOUT}),
                        frozenset({None, ReleaseReason.EXPIRED, ReleaseReason.LEASE_EXPIRED})),
    RunStatus.SUPERSEDED: (frozenset({ErrorType.SUPERSEDED}), frozenset({None})),
    RunStatus.LOST: (frozenset({ErrorType.HEARTBEAT_LOST}),
                     frozenset({None, ReleaseReason.LEASE_EXPIRED})),
}


@dataclass
class ModelRun:
    """One run's record as the model expects it; `present` False once Redis lost it."""

    run_id: str
    workflow_id: str
    status: RunStatus | None = RunStatus.QUEUED
    error_type: ErrorType | None = None
    release_reason: ReleaseReason | None = None
    owner: Process | None = None       # the (worker, pid) the record names
    worker: str | None = None          # kept by finish when no owner was recorded
    record_lost: bool = False
    overdue: bool = False              # waited past the queue timeout (the clock moved)
    ever_started: bool = False
    #: its slot was taken from it (lapsed, replaced, reclaimed) before it ever started
    dispossessed: bool = False
    status_events: int = 0             # status entries on its event stream
    #: what its admission recorded: the run it took the slot from, and how
    previous_holder: str | None = None
    previous_release: ReleaseReason | None = None
    #: cancelled or replaced while running: the slot waits for its body (the reason to record)
    stopping: ReleaseReason | None = None
    digest: str | None = None          # its input, as a join compares it
    superseded: str | None = None      # the pending run it took the place of
    pending_overdue: bool = False      # pending past TEST_RUN_PENDING_TIMEOUT (the clock moved)
    #: it ended while pending (superseded, cancelled, expired): it must never be enqueued
    ended_pending: bool = False
    #: Redis lost its record at some point: a repeat of its admission may make it anew (a
    #: message of its earlier life may still be queued: its start check refuses it)
    ever_lost: bool = False

    @property
    def present(self) -> bool:
        return self.status is not None


@dataclass
class SlotModel:
    """Every workflow's slot, every run, the idempotency keys and the run index."""

    slot: dict[str, str | None] = field(default_factory=dict)
    runs: dict[str, ModelRun] = field(default_factory=dict)
    idem: dict[tuple[str, str], str] = field(default_factory=dict)
    index: dict[str, set[str]] = field(default_factory=dict)
    bodies: set[tuple[str, Process]] = field(default_factory=set)
    pending: dict[str, str | None] = field(default_factory=dict)
    enqueued: set[str] = field(default_factory=set)
    #: workflows where Redis lost data (a record, an empty restart): a body may outlive what
    #: Redis knew of it there, so "never two bodies" is not promised for them
    forgetful: set[str] = field(default_factory=set)

    # -- shared pieces of the scripts (lib.lua) ---------------------------------------------
    def _release(self, run: ModelRun, reason: ReleaseReason) -> bool:
        if self.slot.get(run.workflow_id) != run.run_id:
            return False
        self.slot[run.workflow_id] = None
        if run.present:
            run.release_reason = reason
            run.stopping = None
        self._promote(run.workflow_id)
        return True

    def _promote(self, workflow_id: str) -> str | None:
        """lib.lua promote(): the pending run takes the free slot, queued, its message out."""
        waiting = self.pending.get(workflow_id)
        if waiting is None or self.slot.get(workflow_id) is not None:
            return None
        self.pending[workflow_id] = None
        run = self.runs.get(waiting)
        if run is None or run.status is not RunStatus.PENDING:
            return None
        if run.pending_overdue:
            self._end(run, RunStatus.EXPIRED, ErrorType.PENDING_TIMEOUT)
            run.ended_pending = True
            return None
        self.slot[workflow_id] = waiting
        run.status = RunStatus.QUEUED
        run.status_events += 1
        self.enqueued.add(waiting)
        return waiting

    def _supersede(self, waiting: str) -> str | None:
        run = self.runs[waiting]
        if run.status is not RunStatus.PENDING:
            return None
        self._end(run, RunStatus.SUPERSEDED, ErrorType.SUPERSEDED)
        run.ended_pending = True
        return waiting

    def _end(self, run: ModelRun, status: RunStatus, error_type: ErrorType | None,
             reason: ReleaseReason | None = None) -> None:
        run.status, run.error_type = status, error_type
        if reason is not None:
            run.release_reason = reason
        run.status_events += 1

    def _settle_lapsed(self, run: ModelRun) -> None:
        if run.status is RunStatus.PENDING:
            mine = self.pending.get(run.workflow_id) == run.run_id
            if mine and not run.pending_overdue:
                return
            if mine:
                self.pending[run.workflow_id] = None
            self._end(run, RunStatus.EXPIRED, ErrorType.PENDING_TIMEOUT)
            run.ended_pending = True
            return
        if run.status in LIVE and self.slot.get(run.workflow_id) != run.run_id:
            if run.status is RunStatus.QUEUED:
                self._end(run, RunStatus.EXPIRED, ErrorType.QUEUE_TIMEOUT,
                          ReleaseReason.LEASE_EXPIRED)
            else:
                self._end(run, RunStatus.LOST, ErrorType.HEARTBEAT_LOST,
                          ReleaseReason.LEASE_EXPIRED)

    def _take_slot(self, workflow_id: str, run_id: str | None) -> None:
        """The slot changes hands: a queued run that never started has lost it for good."""
        old = self.slot.get(workflow_id)
        if old and old != run_id and old in self.runs and not self.runs[old].ever_started:
            self.runs[old].dispossessed = True
        self.slot[workflow_id] = run_id

    # -- admit.lua ------------------------------------------------------------------------------
    def admit(self, workflow_id: str, run_id: str, policy: ConflictPolicy,
              key: str | None, digest: str = "d"
              ) -> tuple[str, str, str | None, ReleaseReason | None]:
        """('admitted'|'waits', run, previous holder, how) | ('joined', run, ..) |
        ('existing', run, ..) | ('conflict', holder, ..)"""
        holder = self.slot.get(workflow_id)
        mine = self.runs.get(run_id)
        if holder == run_id or (mine is not None and self.pending.get(workflow_id) == run_id):
            kind = "admitted" if holder == run_id else "waits"
            assert mine is not None
            if not mine.present:  # the record is gone, and what it said with it
                return (kind, run_id, None, None)
            return (kind, run_id, mine.previous_holder, mine.previous_release)
        if mine is not None and mine.present:
            return ("existing", run_id, None, None)  # this very call was answered before
        if key is not None:
            prior = self.idem.get((workflow_id, key))
            if prior is not None:
                prior_run = self.runs.get(prior)
                # a key whose run could not be enqueued admits again, with the same input only
                if (prior_run is None or prior_run.error_type is not ErrorType.ENQUEUE_FAILED
                        or prior_run.digest != digest):
                    return ("existing", prior, None, None)
        if holder is None and self._promote(workflow_id):
            holder = self.slot.get(workflow_id)
        previous: ReleaseReason | None = None
        previous_holder: str | None = None
        if holder is not None:
            held = self.runs[holder]
            if not held.present or (held.status in TERMINAL and held.stopping is None):
                self._release(held, ReleaseReason.RECLAIMED)
                previous_holder, previous = holder, ReleaseReason.RECLAIMED
                holder = self.slot.get(workflow_id)
        waiting = self.pending.get(workflow_id)
        becomes = RunStatus.QUEUED
        if holder is not None:
            held = self.runs[holder]
            if policy is ConflictPolicy.JOIN:
                if held.status not in TERMINAL and held.digest == digest:
                    return ("joined", holder, None, None)
                if waiting is not None:
                    w = self.runs[waiting]
                    if w.status is RunStatus.PENDING and w.digest == digest:
                        return ("joined", waiting, None, None)
            if policy is ConflictPolicy.REPLACE and held.status is RunStatus.QUEUED:
                if waiting is not None:
                    self._supersede(waiting)
                self.pending[workflow_id] = None
                self._end(held, RunStatus.CANCELLED, ErrorType.CANCELLED)
                self._release(held, ReleaseReason.REPLACED)
                previous_holder, previous = holder, ReleaseReason.REPLACED
            elif policy in (ConflictPolicy.REPLACE, ConflictPolicy.QUEUE):
                if policy is ConflictPolicy.REPLACE and held.status is RunStatus.RUNNING:
                    self._end(held, RunStatus.CANCELLED, ErrorType.CANCELLED)
                    held.stopping = ReleaseReason.REPLACED
                    previous_holder, previous = holder, ReleaseReason.REPLACED
                becomes = RunStatus.PENDING
            else:
                return ("conflict", holder, None, None)
        superseded = None
        if becomes is RunStatus.PENDING:
            if waiting is not None:
                superseded = self._supersede(waiting)
            self.pending[workflow_id] = run_id
        else:
            self._take_slot(workflow_id, run_id)
            self.enqueued.add(run_id)
        # a record Redis lost, admitted again by a repeat of its call: its stream outlived it
        before = mine.status_events if mine is not None else 0
        run = ModelRun(run_id, workflow_id, status=becomes, status_events=before + 1,
                       previous_holder=previous_holder, previous_release=previous,
                       digest=digest, superseded=superseded,
                       ever_lost=mine is not None and mine.ever_lost)
        self.runs[run_id] = run
        self.index.setdefault(workflow_id, set()).add(run_id)
        if key is not None:
            self.idem[(workflow_id, key)] = run_id
        kind = "waits" if becomes is RunStatus.PENDING else "admitted"
        return (kind, run_id, previous_holder, previous)

    def upkeep(self, workflow_id: str) -> None:
        """promote.lua (a worker's heartbeat sweep, reconcile): a lapsed slot passes to the
        pending run; a pending run past its timeout, or a stale pointer, is settled."""
        waiting = self.pending.get(workflow_id)
        if waiting is None:
            return
        run = self.runs.get(waiting)
        if run is None or run.status is not RunStatus.PENDING:
            self.pending[workflow_id] = None
            return
        self._settle_lapsed(run)
        if run.status is RunStatus.PENDING and self.slot.get(workflow_id) is None:
            self._promote(workflow_id)

    # -- start.lua ------------------------------------------------------------------------------
    def start(self, run_id: str, process: Process) -> tuple[str, RunStatus | None]:
        run = self.runs[run_id]
        if not run.present:
            return ("missing", None)
        self._settle_lapsed(run)
        if run.status is RunStatus.RUNNING and run.owner == process:
            return ("started", None)
        if run.status is not RunStatus.QUEUED:
            return ("refused", run.status)
        if run.overdue:
            self._end(run, RunStatus.EXPIRED, ErrorType.QUEUE_TIMEOUT)
            self._release(run, ReleaseReason.EXPIRED)
            return ("refused", RunStatus.EXPIRED)
        run.status, run.owner, run.ever_started = RunStatus.RUNNING, process, True
        run.status_events += 1
        self.bodies.add((run_id, process))
        return ("started", None)

    # -- heartbeat.lua --------------------------------------------------------------------------
    def heartbeat(self, run_id: str, process: Process) -> tuple[str, RunStatus | None]:
        run = self.runs[run_id]
        if not run.present:
            run.status, run.owner, run.record_lost = RunStatus.RUNNING, process, True
            run.error_type = run.release_reason = None
            run.worker = None
            run.status_events += 1
        status = run.status
        assert status is not None
        if run.owner != process:
            if not run.record_lost:
                return ("not_ours", status)
            # Redis lost the record and another process rebuilt it: two processes claim the
            # run and nothing tells which one started it, so it ends lost (both are stopped)
            if status is RunStatus.RUNNING:
                self._end(run, RunStatus.LOST, ErrorType.HEARTBEAT_LOST)
                self._release(run, ReleaseReason.LEASE_EXPIRED)
            return ("terminal", run.status)
        if status in TERMINAL:
            return ("terminal", status)
        if status is not RunStatus.RUNNING:
            return ("not_started", status)
        holder = self.slot.get(run.workflow_id)
        if holder == run_id:
            return ("renewed", None)
        if holder is None:
            self.slot[run.workflow_id] = run_id
            return ("reacquired", None)
        self._end(run, RunStatus.LOST, ErrorType.HEARTBEAT_LOST)
        return ("terminal", RunStatus.LOST)

    # -- finish.lua -----------------------------------------------------------------------------
    def finish(self, run_id: str, status: RunStatus, error_type: ErrorType | None,
               reason: ReleaseReason, mode: str, worker: str | None = None,
               ) -> tuple[str, RunStatus | None, ReleaseReason | None]:
        """mode: 'outcome' | 'cancel' | 'queued_only' | 'body_gone'. The reply's last part
        is why this call freed the slot, as recorded (a stopped body's: why it was stopped)."""
        run = self.runs[run_id]
        current = run.status
        if current is None:
            if mode != "outcome":
                return ("missing", None, None)
            run.record_lost, run.owner, run.release_reason = True, None, None
        elif mode != "outcome":
            self._settle_lapsed(run)
            current = run.status
        if current is not None and current in TERMINAL:
            released = None
            if mode in ("outcome", "body_gone") or run.stopping is None:
                why = run.stopping or reason
                released = why if self._release(run, why) else None
            return ("unchanged", current, released)
        if mode == "body_gone" or (mode == "queued_only" and current is not RunStatus.QUEUED):
            return ("unchanged", current, None)
        run.status = RunStatus.QUEUED  # present again (a record rebuilt by this call)
        self._end(run, status, error_type)
        if worker and run.owner is None and run.worker is None:
            run.worker = worker
        released = None
        if mode == "cancel" and current is RunStatus.RUNNING:
            run.stopping = ReleaseReason.CANCELLED  # the slot waits for its body to stop
        elif current is RunStatus.PENDING:
            run.ended_pending = True
            if self.pending.get(run.workflow_id) == run_id:
                self.pending[run.workflow_id] = None
        elif self._release(run, reason):
            released = reason
        return ("finished", current, released)

    # -- read.lua -------------------------------------------------------------------------------
    def read(self, run_id: str) -> RunStatus | None:
        run = self.runs.get(run_id)
        if run is None or not run.present:
            return None
        self._settle_lapsed(run)
        return run.status

    # -- force_release.lua ----------------------------------------------------------------------
    def force_release(self, workflow_id: str, reason: ReleaseReason,
                      expected: str | None) -> str | None:
        holder = self.slot.get(workflow_id)
        if holder is None or (expected is not None and holder != expected):
            return None
        run = self.runs[holder]
        if reason is ReleaseReason.RECLAIMED and run.present and run.stopping is not None:
            return None  # its body may still run: only the worker (or the lease) frees it
        if run.present and run.status in LIVE:
            self._end(run, RunStatus.CANCELLED, ErrorType.CANCELLED)
        # the operator's release stops its process too (the one deliberate exception to
        # "the slot passes once the body is gone": the CLI sends the stop right after)
        self.bodies = {b for b in self.bodies if b[0] != holder}
        self._release(run, reason)
        return holder

    def reconcile(self) -> None:
        """`testruns reconcile`: free slots of ended holders, then read every indexed run."""
        for workflow_id, holder in list(self.slot.items()):
            if holder is None:
                continue
            run = self.runs.get(holder)
            if run is None or not run.present or run.status in TERMINAL:
                self.force_release(workflow_id, ReleaseReason.RECLAIMED, holder)
        for workflow_id in list(self.pending):
            self.upkeep(workflow_id)
        for ids in self.index.values():
            for run_id in ids:
                self.read(run_id)

    # -- the world around the scripts -----------------------------------------------------------
    def lapse(self, workflow_id: str) -> None:
        """The slot's lease ran out (nobody renewed it): a running holder's bodies are gone
        by then (fenced before the lapse, or dead with their worker)."""
        holder = self.slot.get(workflow_id)
        self.bodies = {b for b in self.bodies if b[0] != holder}
        self._take_slot(workflow_id, None)

    def lose_record(self, run_id: str) -> None:
        run = self.runs[run_id]
        run.status = run.error_type = run.release_reason = run.owner = run.worker = None
        run.record_lost = run.overdue = run.pending_overdue = False
        run.previous_holder = run.previous_release = run.stopping = None
        run.digest = run.superseded = None
        run.ever_lost = True
        self.forgetful.add(run.workflow_id)

    def empty_restart(self) -> None:
        """Redis came back with nothing: no slot, record, stream, index or key."""
        for workflow_id in self.slot:
            self._take_slot(workflow_id, None)
        for run_id in self.runs:
            self.lose_record(run_id)
            self.runs[run_id].status_events = 0
        self.idem.clear()
        self.index.clear()
        self.pending.clear()
        self.enqueued.clear()
        self.forgetful.update(self.slot)

    def stops(self, run_id: str, process: Process, verdict: str,
              status: RunStatus | None) -> None:
        """What the worker does with a heartbeat's verdict: stop a body ended over its head."""
        if verdict == "terminal" and status in ENDED_OVER_ITS_HEAD:
            self.bodies.discard((run_id, process))

