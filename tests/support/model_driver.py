"""Drives the real Lua scripts for the model tests, through `RunStore` (worker/core/store.py) and
its typed wrappers (worker/core/lua/), on a private Redis; turns each reply into the
plain tuples tests/support/slot_model.py predicts.

Everything the model tests do to Redis goes through here: when a script's wrapper changes
(admission gaining the queue push, say), this is the one place to adapt.
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import redis
from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError

from tests.support.slot_model import Process
from worker.core.errors import RunFinished, RunNotFound
from worker.core.lua import Admitted, AlreadyAdmitted, Busy, FinishMode, Joined, Pending, Started
from worker.core.settings import Settings
from worker.core.status import ConflictPolicy, ErrorType, ReleaseReason, RunStatus
from worker.core.store import NO_RESULT, RunStore
from worker.runner.outcomes import classify

#: record fields a repeat may rewrite with a new time (a renewal is a renewal)
VOLATILE_FIELDS = frozenset({"heartbeat_ms"})
#: the list the admissions' messages are pushed onto (the fused path, always, in the model)
QUEUE = "model-queue"

def outcomes(settings: Settings) -> dict[str, tuple[RunStatus, ErrorType | None,
                                                    ReleaseReason, str]]:
    """The outcomes the signal handlers record, as (status, error_type, reason, finish mode),
    from the code the handlers use (outcomes.classify for a raised exception)."""

    def of(exc: BaseException) -> tuple[RunStatus, ErrorType | None, ReleaseReason, str]:
        o = classify(exc, settings)
        return (o.status, o.error_type, o.reason, "outcome")

    return {
        "success": (RunStatus.SUCCEEDED, None, ReleaseReason.SUCCEEDED, "outcome"),
        "failure": of(RuntimeError("boom")),
        "soft_limit": of(SoftTimeLimitExceeded()),
        "hard_limit": of(TimeLimitExceeded(3)),
        "child_killed": of(WorkerLostError("killed")),
        "cold_shutdown": (RunStatus.FAILED, ErrorType.WORKER_LOST, ReleaseReason.WORKER_LOST,
                          "outcome"),
        "fenced": (RunStatus.LOST, ErrorType.HEARTBEAT_LOST, ReleaseReason.LEASE_EXPIRED,
                   "outcome"),
        "revoked_queued": (RunStatus.CANCELLED, ErrorType.CANCELLED, ReleaseReason.CANCELLED,
                           "queued_only"),
        "revoked_running": (RunStatus.CANCELLED, ErrorType.CANCELLED, ReleaseReason.CANCELLED,
                            "outcome"),
        "queue_expiry": (RunStatus.EXPIRED, ErrorType.QUEUE_TIMEOUT, ReleaseReason.EXPIRED,
                    "queued_only"),
        "publish_failure": (RunStatus.FAILED, ErrorType.ENQUEUE_FAILED,
                           ReleaseReason.PUBLISH_FAILED, "queued_only"),
        # the worker saw the killed process of a run ended over its head die (confirm.py)
        "body_gone": (RunStatus.CANCELLED, None, ReleaseReason.CANCELLED, "body_gone"),
    }



def sent_lazily(policy: ConflictPolicy, run_id: str) -> bool:
    """Whether the driver sends this admission without its message (half the rejects, by
    run id), as the web sends a reject that expects a 409."""
    return policy is ConflictPolicy.REJECT and zlib.crc32(run_id.encode()) % 2 == 1

class Driver:
    """One RunStore on a private Redis, and the raw client the checks read with."""

    def __init__(self, url: str, prefix: str) -> None:
        self.settings = Settings.from_env(overrides={
            "REDIS_URL": url, "TEST_RUN_KEY_PREFIX": prefix,
            "TEST_RUN_QUEUE_TIMEOUT": "300", "TEST_RUN_HEARTBEAT_TTL": "30",
        })
        self.store = RunStore(self.settings)
        self.keys = self.store.keys
        self.raw: redis.Redis = redis.Redis.from_url(url, decode_responses=True)
        self.outcomes = outcomes(self.settings)

    # -- the scripts -------------------------------------------------------------------------
    def admit(self, workflow_id: str, run_id: str, policy: ConflictPolicy,
              key: str | None, digest: str = "d"
              ) -> tuple[str, str, str | None, ReleaseReason | None]:
        """Always the fused path: each run's message (`msg:<run>`) is pushed onto QUEUE by the
        admission or by its promotion, so the checks see exactly which runs went out. Half the
        rejects (by run id) are lazy, as the web sends one that expects a 409: the message only
        if the script asks for it, whose first call must then have written nothing."""
        eager = (QUEUE, f"msg:{run_id}")
        lazy = sent_lazily(policy, run_id)
        got = self.store.admit(workflow_id, {"n": digest}, on_conflict=policy,
                               idempotency_key=key, run_id=run_id,
                               message=(lambda: eager) if lazy else eager, digest=digest,
                               version="v")
        if isinstance(got, Busy):
            return ("conflict", got.holder, None, None)
        if isinstance(got, AlreadyAdmitted):
            return ("existing", got.run_id, None, None)
        if isinstance(got, Joined):
            return ("joined", got.run_id, None, None)
        assert isinstance(got, Admitted)
        kind = "waits" if isinstance(got, Pending) else "admitted"
        return (kind, got.run_id, got.previous_holder, got.previous_release)

    def upkeep(self, workflow_id: str) -> None:
        self.store.upkeep([workflow_id])

    def start(self, run_id: str, process: Process) -> tuple[str, RunStatus | None]:
        got = self.store.start(run_id, process[0], pid=process[1])
        if isinstance(got, Started):
            return ("started", None)
        return ("refused", got.status) if got.status is not None else ("missing", None)

    def heartbeat(self, run_id: str, process: Process) -> tuple[str, RunStatus | None]:
        beat = self.store.heartbeat(run_id, process[0], process[1])
        return (beat.verdict.value, beat.status)

    def finish(self, run_id: str, outcome: str, worker: str | None
               ) -> tuple[str, RunStatus | None, ReleaseReason | None]:
        status, error_type, reason, mode = self.outcomes[outcome]
        # RunStore.finish answers only "did this call end it"; the model compares the whole
        # reply (status before, why it freed the slot), which its private step hands back
        done = self.store._finish(run_id, status, error_type, f"model: {outcome}",
                                  {"ok": True} if status is RunStatus.SUCCEEDED else NO_RESULT,
                                  reason, worker, _mode(mode))
        return (done.reply.value, done.status, done.released)

    def cancel(self, run_id: str) -> tuple[str, RunStatus | None, bool]:
        """The API's cancel as the store does it; shaped like finish's reply."""
        try:
            run = self.store.cancel(run_id)
        except RunNotFound:
            return ("missing", None, False)
        except RunFinished as exc:
            return ("unchanged", exc.run.status, False)
        return ("finished", None, run.release_reason is ReleaseReason.CANCELLED)

    def read(self, run_id: str) -> RunStatus | None:
        run = self.store.get(run_id)
        return run.status if run is not None else None

    def force_release(self, workflow_id: str, expected: str | None) -> str | None:
        return self.store.force_release(workflow_id, ReleaseReason.FORCED, expected=expected)

    def reconcile(self) -> None:
        from worker.client.operator import reconcile

        reconcile(self.store)

    def log(self, run_id: str) -> None:
        self.store.append_log(run_id, "model: a line")

    # -- the world around them ---------------------------------------------------------------
    def lapse(self, workflow_id: str) -> None:
        """The slot's lease runs out: PEXPIRE 1 ms, then poll (bounded) until it is gone."""
        slot = self.keys.slot(workflow_id)
        self.raw.pexpire(slot, 1)
        deadline = time.monotonic() + 5
        while self.raw.exists(slot):
            assert time.monotonic() < deadline, f"{slot} did not expire"
            time.sleep(0.002)

    def overdue(self, workflow_id: str, run_id: str) -> None:
        """The queue timeout passes for a queued run: its creation (or promotion) time moves
        back past it."""
        record = self.keys.run(workflow_id, run_id)
        field = "promoted_ms" if self.raw.hexists(record, "promoted_ms") else "created_ms"
        self.raw.hincrby(record, field, -int(self.settings.queue_timeout * 1000) - 1)

    def pending_overdue(self, workflow_id: str, run_id: str) -> None:
        """The pending timeout passes for a pending run."""
        self.raw.hset(self.keys.run(workflow_id, run_id), "pending_until_ms", 0)

    def lose_record(self, workflow_id: str, run_id: str) -> None:
        self.raw.delete(self.keys.run(workflow_id, run_id))

    def empty_restart(self) -> None:
        self.raw.flushall()
        self.raw.script_flush()

    # -- what the checks read ----------------------------------------------------------------
    def slot(self, workflow_id: str) -> str | None:
        return self.raw.get(self.keys.slot(workflow_id))

    def pending(self, workflow_id: str) -> str | None:
        return self.raw.get(self.keys.pending(workflow_id))

    def enqueued(self) -> set[str]:
        """The runs whose message is on the queue."""
        return {m.removeprefix("msg:") for m in self.raw.lrange(QUEUE, 0, -1)}

    def record(self, workflow_id: str, run_id: str) -> dict[str, str]:
        return self.raw.hgetall(self.keys.run(workflow_id, run_id))

    def status_events(self, workflow_id: str, run_id: str) -> int:
        entries = self.raw.xrange(self.keys.events(workflow_id, run_id))
        return sum(1 for _, fields in entries if fields.get("kind") == "status")

    def keys_without_ttl(self) -> list[str]:
        # the broker's queue is the broker's: no TTL of ours
        return [k for k in self.raw.scan_iter(count=1000)
                if k != QUEUE and self.raw.pttl(k) < 0]

    def dump(self) -> dict[str, Any]:
        """Every key's value (TTLs and renewal times aside), to compare before and after a
        repeated call."""
        out: dict[str, Any] = {}
        for key in sorted(self.raw.scan_iter(count=1000)):
            kind = self.raw.type(key)
            if kind == "string":
                out[key] = self.raw.get(key)
            elif kind == "hash":
                out[key] = {f: v for f, v in self.raw.hgetall(key).items()
                            if f not in VOLATILE_FIELDS}
            elif kind == "zset":
                out[key] = self.raw.zrange(key, 0, -1, withscores=True)
            elif kind == "list":
                out[key] = self.raw.lrange(key, 0, -1)
            elif kind == "stream":
                out[key] = [fields for _, fields in self.raw.xrange(key)]
            else:
                out[key] = kind
        return out


def _mode(mode: str) -> FinishMode:
    return FinishMode(mode)
