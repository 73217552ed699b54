"""The run store: slots, run records and logs in Redis, through the Lua scripts.
Over 300 lines because each of a run's transitions is here with the lifecycle events its
script's reply means (admit, start, finish, cancel, heartbeat, a read that settles a lapsed
lease): split up, one slot's rules would be read in two places.

The only code that takes or frees a slot or moves a run's status: the web process (admit,
cancel, read) and the worker (start, heartbeat, finish) both go through `RunStore`, and every
change is one script call (worker/core/lua/). Its Redis client is created lazily, once per process:
never at import, so a gunicorn master or a Celery main process that forks does not share a
connection with its children.

`RunStore` holds a run's lifecycle only. The Redis work around it lives with the module that
does it, on the store's one client and scripts (`RunStore.connection`): the operator's scan
(worker/client/operator.py), the trigger rate limit (worker/client/ratelimit.py), the event
stream reader with its own pool (worker/client/watch.py), worker liveness
(worker/runner/liveness.py, worker/client/online.py) and the metrics' gauges
(worker/core/gauges.py).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

import redis

from . import lua
from .connection import Connection, RedisClient, Scripts, connect
from .errors import RunFinished, RunNotFound
from .events import clip_line
from .keys import Keys, new_run_id, workflow_of
from .lifecycle import lifecycle
from .lua import (
    AdmitResult,
    Admitted,
    Beat,
    BeatVerdict,
    Busy,
    FinishMode,
    Joined,
    Pending,
    Refused,
    Started,
)
from .runs import Run
from .settings import Settings
from .status import STATUS_RELEASE_REASON, ConflictPolicy, ErrorType, ReleaseReason, RunStatus

#: `finish(result=...)` default: the run has no result (distinct from a result of None)
NO_RESULT: Any = object()


class RunStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._lock = threading.Lock()
        self._connection: Connection | None = None
        #: publishes a promoted run whose message the script could not push (the two-step
        #: path): set by the Celery app that carries this store (worker/core/publish.py)
        self.publisher: Callable[[str], None] | None = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def connection(self) -> Connection:
        """The client and its registered scripts, built on first use, once per process (and
        thread-safe). The store's own methods use it; so do the modules that own their own
        Redis work: the operator scan, the rate limiter, the stream reader, liveness, the
        gauges. None of them builds a client for the request path of its own."""
        if self._connection is None:
            with self._lock:
                if self._connection is None:
                    connection = connect(self.settings)
                    connection.scripts.on_promoted(self._promoted, self._pending_expired)
                    self._connection = connection
        return self._connection

    def _promoted(self, run_id: str, pushed: bool) -> None:
        """A script freed a slot and the pending run `run_id` took it, in that same step: its
        message is out already (`pushed`), or this process publishes it now. A crash before
        that leaves it queued with `publish_due`: its queued lease ends it, and `testruns
        reconcile` publishes it."""
        workflow_id = workflow_of(run_id) or ""
        lifecycle.promoted(run_id, workflow_id)
        if not pushed and self.publisher is not None:
            self.publisher(run_id)

    @staticmethod
    def _pending_expired(run_id: str) -> None:
        """A script freed a slot whose pending run was past its pending timeout: it ended
        expired there, and is counted like every other ending."""
        lifecycle.finished(run_id, workflow_of(run_id) or "", RunStatus.EXPIRED,
                           ErrorType.PENDING_TIMEOUT)

    @property
    def _redis(self) -> RedisClient:
        return self.connection.redis

    @property
    def _scripts(self) -> Scripts:
        return self.connection.scripts

    def ping(self) -> bool:
        return bool(self._redis.ping())

    def eviction_warning(self) -> str | None:
        """A maxmemory policy that may evict slot keys would free slots of live runs."""
        try:
            policy = self._redis.config_get("maxmemory-policy").get("maxmemory-policy")
        except redis.ResponseError as exc:  # CONFIG disabled (managed Redis)
            return f"could not read maxmemory-policy ({exc}); make sure it is noeviction"
        if policy and policy != "noeviction":
            return (f"Redis maxmemory-policy is {policy!r}: under memory pressure it may evict "
                    "the slot keys of running test runs; set it to 'noeviction'")
        return None

    # -- admission (web) ----------------------------------------------------------------------
    def admit(self, workflow_id: str, input: Any, *,
              on_conflict: ConflictPolicy = ConflictPolicy.REJECT,
              idempotency_key: str | None = None,
              triggered_by: str | None = None, run_id: str | None = None,
              message: lua.Message | None = None, digest: str | Callable[[], str] = "",
              version: str = "") -> AdmitResult:
        """Take the slot and write the queued record in one round trip (or, by the policy,
        make the run the pending one, or join the holder); with `message` ((list, message)
        for a `run_id` made by the caller), push the task message in the same step (the fused
        path; a pending run keeps it until promoted) — given as a function that makes it, a
        reject that expects a conflict sends it only if the step needs it (a second round
        trip then: lua/admission.py). `input` may be given as its JSON text already (a str);
        `digest` (or a function that makes it, called only when a step reads it) and
        `version` are what a join compares."""
        result = self._scripts.admit(
            self.keys, workflow_id, run_id or new_run_id(workflow_id), input,
            lease_ms=int(self.settings.queued_lease * 1000),
            retention_s=self.settings.retention, on_conflict=on_conflict,
            idempotency_key=idempotency_key, triggered_by=triggered_by,
            max_runs=self.settings.max_runs_per_workflow, message=message,
            pending_ms=int(self.settings.pending_timeout * 1000), digest=digest,
            version=version)
        if isinstance(result, Admitted):
            holder, reason = result.previous_holder, result.previous_release
            if holder and reason:
                if not isinstance(result, Pending):
                    lifecycle.took_over(holder, workflow_id, result.run_id, reason)
                if reason is ReleaseReason.REPLACED:  # admit.lua recorded it cancelled
                    lifecycle.finished(holder, workflow_id, RunStatus.CANCELLED,
                                       ErrorType.CANCELLED,
                                       duration_s=result.previous_duration_s)
                if not (isinstance(result, Pending) and reason is ReleaseReason.REPLACED):
                    lifecycle.released(holder, workflow_id, reason)
            if result.superseded:
                lifecycle.finished(result.superseded, workflow_id, RunStatus.SUPERSEDED,
                                   ErrorType.SUPERSEDED)
                lifecycle.superseded(result.superseded, workflow_id, result.run_id)
            lifecycle.admitted(result.run_id, workflow_id, triggered_by=triggered_by,
                               pending=isinstance(result, Pending))
        elif isinstance(result, (Busy, Joined)):
            if result.reclaimed:
                lifecycle.released(result.reclaimed, workflow_id, ReleaseReason.RECLAIMED)
            if isinstance(result, Busy):
                lifecycle.conflict(result.holder, workflow_id)
            else:
                lifecycle.joined(result.run_id, workflow_id)
        return result

    def upkeep(self, workflow_ids: Iterable[str]) -> list[lua.Upkept]:
        """promote.lua for each workflow that has a pending run: a slot whose lease lapsed
        passes to it; one past its pending timeout ends expired (a worker's heartbeat sweeps
        every registered workflow). Which have one is asked first (existing.lua): a beat
        over 100,000 workflows made a call each, seconds of the worker's CPU. One pipeline
        (on a cluster, whose pipelines refuse scripts, one by one)."""
        ids = self._scripts.existing.which(list(workflow_ids), self.keys.pending)
        promote = self._scripts.promote
        if self.connection.cluster:
            done = [promote(self.keys, workflow_id) for workflow_id in ids]
        else:
            pipe = self._redis.pipeline(transaction=False)
            for workflow_id in ids:
                promote.queue(self.keys, workflow_id, pipe)
            done = [promote.decode(raw) for raw in pipe.execute()]
        for workflow_id, upkept in zip(ids, done, strict=True):
            if upkept.expired:
                lifecycle.finished(upkept.expired, workflow_id, RunStatus.EXPIRED,
                                   ErrorType.PENDING_TIMEOUT)
        return done

    # -- the task's side (worker) -------------------------------------------------------------
    def start(self, run_id: str, worker: str | None,
              pid: int | None = None) -> Started | Refused:
        """Confirm the run still owns its slot and is queued; mark it running by this
        process (its pid is what the heartbeat renews for and the hard limit kills). `pid`
        defaults to this process: the task calls it from the pool process that runs the
        body; the model tests name other processes (a duplicate delivery elsewhere)."""
        workflow_id = self._workflow(run_id)
        decision = self._scripts.start(
            self.keys, workflow_id, run_id, worker=worker or "",
            pid=os.getpid() if pid is None else pid,
            lease_ms=int(self.settings.heartbeat_ttl * 1000),
            queue_timeout_ms=int(self.settings.queue_timeout * 1000))
        if isinstance(decision, Started):
            lifecycle.started(run_id, workflow_id, worker or "",
                              queue_wait_s=decision.queue_wait_s)
        else:
            if decision.ended is not None and decision.status is not None:
                # the start check itself ended it: queue time out, or a lapsed lease
                lifecycle.ended(run_id, workflow_id, decision.status,
                                _settled_error(decision.status), decision.ended)
            lifecycle.refused(run_id, workflow_id, decision.status)
        return decision

    def finish(self, run_id: str, status: RunStatus, *, error_type: ErrorType | None = None,
               error: str | None = None, result: Any = NO_RESULT,
               reason: ReleaseReason | None = None, worker: str | None = None,
               only_if_queued: bool = False, body_gone: bool = False) -> bool:
        """Record an outcome and free the slot; a no-op once the run is terminal (idempotent,
        as Celery sends task_failure twice on a hard time limit). `only_if_queued` is for a
        message that was revoked or expired before it ran: a late duplicate of a running run's
        message must not end that run. `body_gone`: the worker saw the process of a run ended
        over its head die: only the slot it kept for the body is freed. True if this call
        ended it."""
        mode = (FinishMode.QUEUED_ONLY if only_if_queued else
                FinishMode.BODY_GONE if body_gone else FinishMode.OUTCOME)
        return self._finish(run_id, status, error_type, error, result, reason, worker,
                            mode).ended

    def cancel(self, run_id: str) -> Run:
        """Mark a run cancelled; free its slot at once if it was queued (a running run's slot
        passes once its body has stopped; a pending run never held it). The caller stops a
        running run's process."""
        done = self._finish(run_id, RunStatus.CANCELLED, ErrorType.CANCELLED,
                            "cancelled by request", NO_RESULT, ReleaseReason.CANCELLED, None,
                            FinishMode.CANCEL)
        if done.run is None:
            raise RunNotFound(run_id)
        if not done.ended:
            raise RunFinished(done.run)
        lifecycle.cancelled(run_id, done.run.workflow_id)
        return done.run

    def _finish(self, run_id: str, status: RunStatus, error_type: ErrorType | None,
                error: str | None, result: Any, reason: ReleaseReason | None,
                worker: str | None, mode: FinishMode) -> lua.Finished:
        workflow_id = self._workflow(run_id)
        reason = reason or STATUS_RELEASE_REASON[status]
        done = self._scripts.finish(
            self.keys, workflow_id, run_id, status=status, error_type=error_type, error=error,
            result_json="" if result is NO_RESULT else json.dumps(result, separators=(",", ":")),
            reason=reason, worker=worker, retention_s=self.settings.retention, mode=mode)
        if done.ended and done.released:  # the usual ending: one step, one event
            lifecycle.ended(run_id, workflow_id, status, error_type, done.released,
                            duration_s=done.duration_s)
            return done
        if done.ended:
            lifecycle.finished(run_id, workflow_id, status, error_type,
                               duration_s=done.duration_s)
        elif done.settled and done.status is not None:
            # this call found the lease lapsed and recorded that instead (expired / lost)
            error = done.run.error_type if done.run else None
            lifecycle.finished(run_id, workflow_id, done.status,
                               error or _settled_error(done.status), duration_s=done.duration_s)
            if error is not ErrorType.PENDING_TIMEOUT:  # a pending run held no slot
                lifecycle.released(run_id, workflow_id, ReleaseReason.LEASE_EXPIRED)
        if done.released:
            lifecycle.released(run_id, workflow_id, done.released)
        return done

    def heartbeat(self, run_id: str, worker: str | None, pid: int) -> Beat:
        """Renew a running run's lease for the process that started it."""
        workflow_id = self._workflow(run_id)
        beat = self._scripts.heartbeat(
            self.keys, workflow_id, run_id, worker=worker or "", pid=pid,
            ttl_ms=int(self.settings.heartbeat_ttl * 1000), retention_s=self.settings.retention)
        if beat.verdict in (BeatVerdict.RENEWED, BeatVerdict.REACQUIRED):
            lifecycle.renewed(run_id, workflow_id, beat.verdict is BeatVerdict.REACQUIRED)
        elif beat.ended:  # another run took its lapsed slot: recorded lost by this beat
            lifecycle.finished(run_id, workflow_id, RunStatus.LOST, ErrorType.HEARTBEAT_LOST,
                               duration_s=beat.duration_s)
        return beat

    def body_of(self, run_id: str) -> tuple[str, int] | None:
        """The worker and pool process that started the run (the start check's record): the
        only process a stop may kill for it (a refused duplicate delivery shares its id)."""
        worker, pid = self._redis.hmget(self.keys.run(self._workflow(run_id), run_id),
                                        "worker", "pid")
        return (str(worker), int(pid)) if worker and pid else None

    def append_log(self, run_id: str, line: str) -> lua.LogReply:
        """Append a line to the run's `logs` and to its event stream in one script
        (append_log.lua): a reader's snapshot (read.lua) sees a line in both or in neither.
        Capped: characters per line (TEST_RUN_MAX_LOG_LINE), lines kept
        (TEST_RUN_MAX_LOG_LINES) and bytes written in all (TEST_RUN_MAX_LOG_BYTES). A running
        run's lines go in batches, on the same script (worker/runner/runlog.py)."""
        settings = self.settings
        return self._scripts.append_log(
            self.keys, self._workflow(run_id), run_id, [clip_line(line, settings.max_log_line)],
            max_lines=settings.max_log_lines, max_bytes=settings.max_log_bytes,
            retention_s=settings.retention)[0]

    # -- reading ------------------------------------------------------------------------------
    def get(self, run_id: str) -> Run | None:
        workflow_id = workflow_of(run_id)
        if workflow_id is None:
            return None
        read = self._scripts.read
        reply = read.queue(self.keys, workflow_id, run_id)
        run = read.decode(reply)
        if run is not None and read.settled(reply):
            _settled(run)
        return run

    def snapshot(self, run_id: str) -> lua.RunSnapshot | None:
        """The run and where its event stream stands, in one atomic read; its `settled` says
        whether this very read ended the run (a lapsed lease: now expired or lost)."""
        workflow_id = workflow_of(run_id)
        if workflow_id is None:
            return None
        snap = self._scripts.read.snapshot(self.keys, workflow_id, run_id)
        if snap is not None and snap.settled:
            _settled(snap.run)
        return snap

    def list_runs(self, workflow_id: str, limit: int, *, full: bool = False) -> list[Run]:
        """The workflow's newest runs first, each read (and settled) by the read script: as
        summaries (no input, result or logs) unless `full`. One pipeline on a single Redis;
        on a cluster, whose pipelines refuse scripts, one call per run (the same node)."""
        fields = lua.ReadFields.FULL if full else lua.ReadFields.SUMMARY
        run_ids = [str(r) for r in self._redis.zrevrange(self.keys.index(workflow_id), 0,
                                                           max(0, limit - 1))]
        if not run_ids:
            return []
        read = self._scripts.read
        if self.connection.cluster:  # no EVALSHA in a cluster pipeline: one call each
            replies = [read.queue(self.keys, workflow_id, run_id, fields=fields)
                       for run_id in run_ids]
        else:
            pipe = self._redis.pipeline(transaction=False)
            for run_id in run_ids:
                read.queue(self.keys, workflow_id, run_id, client=pipe, fields=fields)
            replies = pipe.execute()
        runs = []
        for reply in replies:
            run = read.decode(reply)
            if run is not None:
                if read.settled(reply):
                    _settled(run)
                runs.append(run)
        return runs

    def log_page(self, run_id: str, offset: int, limit: int) -> tuple[int, list[str]] | None:
        """`limit` lines of the run's log from `offset` (0: the oldest line kept), and how many
        lines it has; None if the run has no record. One MULTI: the count and the lines agree."""
        workflow_id = workflow_of(run_id)
        if workflow_id is None:
            return None
        logs = self.keys.logs(workflow_id, run_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.exists(self.keys.run(workflow_id, run_id))
        pipe.llen(logs)
        pipe.lrange(logs, offset, offset + limit - 1)
        exists, total, lines = pipe.execute()
        if not exists:
            return None
        return int(total), [str(line) for line in lines]

    def holders(self, workflow_ids: Iterable[str]) -> dict[str, str | None]:
        """The run id holding each workflow's slot (one pipeline, no scan)."""
        return {w: pair[0] for w, pair in self.slots(workflow_ids).items()}

    def slots(self, workflow_ids: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
        """Each workflow's (slot holder, pending run), one pipeline, no scan."""
        ids = list(workflow_ids)
        if not ids:
            return {}
        pipe = self._redis.pipeline(transaction=False)
        queue_slots(pipe, self.keys, ids, cluster=self.connection.cluster)
        return dict(zip(ids, slot_pairs(pipe.execute(), cluster=self.connection.cluster),
                        strict=True))

    # -- operator -----------------------------------------------------------------------------
    def force_release(self, workflow_id: str, reason: ReleaseReason = ReleaseReason.FORCED,
                      *, expected: str | None = None) -> str | None:
        """Free a workflow's slot, marking a live holder cancelled; with `expected`, only if
        that run still holds it (so a check-then-release cannot free a newer holder)."""
        freed = self._scripts.force_release(self.keys, workflow_id, reason=reason,
                                            expected=expected)
        if freed is None:
            return None
        if freed.ended:
            lifecycle.ended(freed.holder, workflow_id, RunStatus.CANCELLED,
                            ErrorType.CANCELLED, reason, duration_s=freed.duration_s)
        else:
            lifecycle.released(freed.holder, workflow_id, reason)
        lifecycle.forced(freed.holder, workflow_id, reason)
        return freed.holder

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _workflow(run_id: str) -> str:
        workflow_id = workflow_of(run_id)
        if workflow_id is None:
            raise RunNotFound(run_id)
        return workflow_id


def _settled_error(status: RunStatus) -> ErrorType:
    """The error type settle_lapsed (lib.lua) records with each status it settles to."""
    return ErrorType.QUEUE_TIMEOUT if status is RunStatus.EXPIRED else ErrorType.HEARTBEAT_LOST


def _settled(run: Run) -> None:
    """A read found `run`'s lease lapsed (or its pending time over) and ended it (read.lua):
    raise its ending, once."""
    duration = ((run.finished_ms - run.started_ms) / 1000
                if run.started_ms and run.finished_ms else None)
    error = run.error_type or _settled_error(run.status)
    if run.error_type is ErrorType.PENDING_TIMEOUT:  # a pending run held no slot
        lifecycle.finished(run.run_id, run.workflow_id, run.status, error, duration_s=duration)
    else:
        lifecycle.ended(run.run_id, run.workflow_id, run.status, error,
                        ReleaseReason.LEASE_EXPIRED, duration_s=duration)


def queue_slots(pipe: Any, keys: Keys, workflow_ids: list[str], *, cluster: bool) -> None:
    """Queue the reads of each workflow's slot and pending run on `pipe`: one MGET each (one
    hash tag), or on a cluster, whose pipelines refuse MGET, two GETs."""
    for workflow_id in workflow_ids:
        if cluster:
            pipe.get(keys.slot(workflow_id))
            pipe.get(keys.pending(workflow_id))
        else:
            pipe.mget(keys.slot(workflow_id), keys.pending(workflow_id))


def slot_pairs(replies: list[Any], *, cluster: bool) -> list[tuple[Any, Any]]:
    """`queue_slots`' replies as (holder, pending run) per workflow."""
    if cluster:
        return list(zip(replies[::2], replies[1::2], strict=True))
    return [(pair[0], pair[1]) for pair in replies]
