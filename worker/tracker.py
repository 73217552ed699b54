"""Slots and run records in Redis: the only code that takes or frees a slot or moves a status.

Both the web process (admit, cancel, read) and the worker (start, heartbeat, finish) use this
class. Its Redis client is created lazily, once per process: never at import, so a gunicorn
master or a Celery main process that forks does not share a connection with its children.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import scripts
from .events import Event, emit
from .keys import Keys, new_run_id, workflow_of
from .runs import Run
from .settings import Settings
from .status import STATUS_RELEASE_REASON, ErrorType, ReleaseReason, RunStatus

_NO_RESULT = object()


class RunNotFound(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no test run {run_id!r}")
        self.run_id = run_id


class RunFinished(Exception):
    """The run already reached a terminal status, which never changes."""

    def __init__(self, run: Run) -> None:
        super().__init__(f"test run {run.run_id} already ended: {run.status.value}")
        self.run = run


@dataclass(frozen=True)
class Admission:
    """What a trigger got: admitted (new run), existing (same idempotency key) or conflict."""

    outcome: str
    run_id: str
    displaced: str | None = None   # the holder this admission reclaimed or replaced
    displaced_how: str | None = None
    run: Run | None = None         # the queued record as written, so nobody reads it back

    @property
    def admitted(self) -> bool:
        return self.outcome == "admitted"


@dataclass(frozen=True)
class StartDecision:
    started: bool
    status: str | None = None
    input: Any = None


class Tracker:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    # -- connection ---------------------------------------------------------------------------
    @property
    def redis(self) -> redis.Redis:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    timeout = self.settings.io_timeout
                    pool = redis.BlockingConnectionPool.from_url(
                        self.settings.result_backend,
                        max_connections=64,
                        timeout=max(1.0, timeout * 2),  # wait for a free connection
                        socket_connect_timeout=timeout,
                        socket_timeout=max(1.0, timeout * 2),
                        health_check_interval=30,
                        decode_responses=True,
                        # one immediate retry survives a connection dropped by a Redis restart;
                        # more would turn an outage into multi-second stalls
                        retry=Retry(NoBackoff(), 1),
                    )
                    client = redis.Redis(connection_pool=pool)
                    self._scripts = {
                        name: client.register_script(getattr(scripts, name))
                        for name in ("ADMIT", "START", "FINISH", "READ", "HEARTBEAT",
                                     "FORCE_RELEASE")
                    }
                    self._client = client
        return self._client

    def _script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        self.redis  # noqa: B018 - builds the client and registers the scripts
        return self._scripts[name](keys=keys, args=args)

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def eviction_warning(self) -> str | None:
        """A maxmemory policy that may evict slot keys would free slots of live runs."""
        try:
            policy = self.redis.config_get("maxmemory-policy").get("maxmemory-policy")
        except redis.ResponseError as exc:  # CONFIG disabled (managed Redis)
            return f"could not read maxmemory-policy ({exc}); make sure it is noeviction"
        if policy and policy != "noeviction":
            return (f"Redis maxmemory-policy is {policy!r}: under memory pressure it may evict "
                    "the slot keys of running test runs; set it to 'noeviction'")
        return None

    # -- admission (web) ----------------------------------------------------------------------
    def admit(self, workflow_id: str, input: Any, *, on_conflict: str = "reject",
              idempotency_key: str | None = None) -> Admission:
        """Take the slot and write the queued record in one round trip."""
        run_id = new_run_id(workflow_id)
        k = self.keys
        idem = k.idempotency(workflow_id, idempotency_key or "-")
        reply = self._script("ADMIT", [
            k.slot(workflow_id), k.run(workflow_id, run_id), k.index(workflow_id), idem,
        ], [
            run_id, workflow_id, json.dumps(input, separators=(",", ":")),
            int(self.settings.queued_lease * 1000), self.settings.retention, on_conflict,
            k.run_prefix(workflow_id), "1" if idempotency_key else "0",
        ])
        outcome, rid = reply[0], reply[1]
        if outcome == "admitted":
            displaced = reply[2] or None
            how = reply[3] or None
            if displaced:
                emit(Event.RECLAIMED if how == "reclaimed" else Event.REPLACED,
                     workflow_id=workflow_id, run_id=displaced, by_run_id=rid,
                     reason=how)
            emit(Event.ADMITTED, workflow_id=workflow_id, run_id=rid)
            run = Run(run_id=rid, workflow_id=workflow_id, status=RunStatus.QUEUED,
                      created_ms=int(reply[4]), input=input)
            return Admission(outcome, rid, displaced, how, run)
        if outcome == "conflict":
            emit(Event.CONFLICT, workflow_id=workflow_id, run_id=rid)
        return Admission(outcome, rid)

    # -- the task's side (worker) -------------------------------------------------------------
    def start(self, run_id: str, worker: str | None) -> StartDecision:
        """Confirm the run still owns its slot and is queued; mark it running."""
        wf = self._workflow(run_id)
        k = self.keys
        reply = self._script("START", [k.slot(wf), k.run(wf, run_id)], [
            run_id, worker or "", int(self.settings.heartbeat_ttl * 1000),
            int(self.settings.queue_timeout * 1000), os.getpid(),
        ])
        if reply[0] == "started":
            emit(Event.STARTED, workflow_id=wf, run_id=run_id, worker=worker)
            return StartDecision(True, RunStatus.RUNNING.value, json.loads(reply[1]))
        status = reply[1] if len(reply) > 1 else None
        emit(Event.REFUSED, workflow_id=wf, run_id=run_id, status=status or "missing")
        return StartDecision(False, status)

    def finish(self, run_id: str, status: RunStatus, *, error_type: ErrorType | None = None,
               error: str | None = None, result: Any = _NO_RESULT,
               reason: ReleaseReason | None = None, worker: str | None = None,
               only_if_queued: bool = False) -> bool:
        """Record an outcome and free the slot; a no-op once the run is terminal (idempotent,
        as Celery sends task_failure twice on a hard time limit). `only_if_queued` is for a
        message that was revoked or expired before it ran: a late duplicate of a running run's
        message must not end that run. True if this call ended it."""
        mode = "queued_only" if only_if_queued else "outcome"
        reply = self._finish(run_id, status, error_type, error, result, reason, worker, mode)
        return reply[0] == "finished"

    def cancel(self, run_id: str) -> Run:
        """Mark a run cancelled and free its slot at once; the caller revokes the task."""
        reply = self._finish(run_id, RunStatus.CANCELLED, ErrorType.CANCELLED,
                             "cancelled by request", _NO_RESULT, ReleaseReason.CANCELLED,
                             None, "cancel")
        if reply[0] == "missing":
            raise RunNotFound(run_id)
        run = self._decode(reply[3:5])
        assert run is not None  # FINISH in cancel mode returns the record it wrote
        if reply[0] == "unchanged":
            raise RunFinished(run)
        emit(Event.CANCELLED, workflow_id=run.workflow_id, run_id=run_id)
        return run

    def _finish(self, run_id: str, status: RunStatus, error_type: ErrorType | None,
                error: str | None, result: Any, reason: ReleaseReason | None,
                worker: str | None, mode: str) -> list[Any]:
        wf = self._workflow(run_id)
        k = self.keys
        reason = reason or STATUS_RELEASE_REASON[status]
        result_json = "" if result is _NO_RESULT else json.dumps(result, separators=(",", ":"))
        reply = self._script("FINISH", [
            k.slot(wf), k.run(wf, run_id), k.logs(wf, run_id),
        ], [
            run_id, wf, status.value, error_type.value if error_type else "", error or "",
            result_json, reason.value, worker or "", self.settings.retention, mode,
        ])
        if reply[0] == "finished":
            emit(Event.FINISHED, workflow_id=wf, run_id=run_id, status=status.value,
                 error_type=error_type.value if error_type else None)
            if reply[2]:
                emit(Event.RELEASED, workflow_id=wf, run_id=run_id, reason=reason.value)
        return reply

    def heartbeat(self, run_id: str, worker: str | None, pid: int) -> tuple[str, str | None]:
        """Renew a running run's lease for the process that started it; ('terminal', status)
        tells the caller to stop that process, ('not_ours', _) that it runs something else."""
        wf = self._workflow(run_id)
        k = self.keys
        reply = self._script("HEARTBEAT", [k.slot(wf), k.run(wf, run_id)], [
            run_id, wf, int(self.settings.heartbeat_ttl * 1000), worker or "",
            self.settings.retention, pid,
        ])
        return reply[0], (reply[1] if len(reply) > 1 else None)

    def pid_of(self, run_id: str) -> int | None:
        """The pool process that started the run (recorded by the start check)."""
        wf = self._workflow(run_id)
        pid = self.redis.hget(self.keys.run(wf, run_id), "pid")
        return int(pid) if pid else None

    def append_log(self, run_id: str, line: str) -> None:
        wf = self._workflow(run_id)
        key = self.keys.logs(wf, run_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.rpush(key, line)
        pipe.ltrim(key, -self.settings.max_log_lines, -1)
        pipe.expire(key, self.settings.retention)
        pipe.execute()

    # -- reading ------------------------------------------------------------------------------
    def get(self, run_id: str) -> Run | None:
        wf = workflow_of(run_id)
        if wf is None:
            return None
        k = self.keys
        reply = self._script("READ", [k.slot(wf), k.run(wf, run_id), k.logs(wf, run_id)],
                             [run_id])
        return self._decode(reply)

    def list_runs(self, workflow_id: str, limit: int) -> list[Run]:
        k = self.keys
        run_ids = [str(r) for r in self.redis.zrevrange(k.index(workflow_id), 0,
                                                          max(0, limit - 1))]
        if not run_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for rid in run_ids:
            self._scripts["READ"](keys=[k.slot(workflow_id), k.run(workflow_id, rid),
                                        k.logs(workflow_id, rid)], args=[rid], client=pipe)
        runs = [self._decode(reply) for reply in pipe.execute()]
        return [run for run in runs if run is not None]

    def holders(self, workflow_ids: Iterable[str]) -> dict[str, str | None]:
        """The run id holding each workflow's slot (one MGET-like pipeline, no scan)."""
        ids = list(workflow_ids)
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for wf in ids:
            pipe.get(self.keys.slot(wf))
        return dict(zip(ids, pipe.execute(), strict=True))

    def slot_ttl_ms(self, workflow_id: str) -> int | None:
        ttl = self.redis.pttl(self.keys.slot(workflow_id))
        return ttl if ttl and ttl > 0 else None

    # -- operator -----------------------------------------------------------------------------
    def force_release(self, workflow_id: str, reason: ReleaseReason = ReleaseReason.FORCED,
                      *, expected: str | None = None) -> str | None:
        """Free a workflow's slot, marking a live holder cancelled; with `expected`, only if
        that run still holds it (so a check-then-release cannot free a newer holder)."""
        k = self.keys
        holder = self._script("FORCE_RELEASE", [k.slot(workflow_id)],
                              [k.run_prefix(workflow_id), reason.value, expected or ""])
        if holder:
            emit(Event.FORCED, workflow_id=workflow_id, run_id=holder)
        return holder or None

    # -- helpers ------------------------------------------------------------------------------
    @staticmethod
    def _workflow(run_id: str) -> str:
        wf = workflow_of(run_id)
        if wf is None:
            raise RunNotFound(run_id)
        return wf

    @staticmethod
    def _decode(reply: Any) -> Run | None:
        if not reply:
            return None
        flat, logs = reply
        raw = dict(zip(flat[::2], flat[1::2], strict=True))
        return Run.from_redis(raw, logs)
