"""admit.lua's wrapper: a trigger takes the slot and writes the queued record in one step
(and, on the fused path, pushes the task message in that same step)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..keys import Keys
from ..status import ConflictPolicy, ReleaseReason, RunStatus
from .base import LuaScript, compact_json, ms_to_seconds
from .replies import AdmitReply


@dataclass(frozen=True)
class Admitted:
    """The new run holds the slot; `previous_holder` is the run it took the slot from, and
    `previous_release` how (RECLAIMED: that run had ended; REPLACED: on_conflict=replace).
    `previous_duration_s`: a replaced holder's start to its end (None: it never started).
    `superseded`: the pending run it took the place of (a replace), else None."""

    run_id: str
    created_ms: int
    previous_holder: str | None = None
    previous_release: ReleaseReason | None = None
    previous_duration_s: float | None = None
    superseded: str | None = None


@dataclass(frozen=True)
class Pending(Admitted):
    """The new run is the workflow's pending run (on_conflict=queue, or a replace of a holder
    whose body still runs: `previous_release` REPLACED, the holder recorded cancelled, its slot
    not yet freed); it takes the slot when the slot is freed."""


@dataclass(frozen=True)
class Joined:
    """on_conflict=join: `run_id` (the holder or the pending run) was triggered with the same
    input and workflow version; nothing was written. `reclaimed`: a holder that had ended,
    whose slot this call freed on the way."""

    run_id: str
    reclaimed: str | None = None


@dataclass(frozen=True)
class AlreadyAdmitted:
    """The Idempotency-Key already admitted this run: nothing was written."""

    run_id: str


@dataclass(frozen=True)
class Busy:
    """Another run holds the slot (on_conflict=reject, or a join of another input): nothing
    was written (but the reclaim of a holder that had ended: `reclaimed`). The holder as the
    same step saw it: its status, when it started and last renewed its lease (ms, None: not
    yet), the lease's ms left, the pending run, when it was queued (or promoted), and Redis'
    clock then (`now_ms`)."""

    holder: str
    status: RunStatus | None = None
    started_ms: int | None = None
    heartbeat_ms: int | None = None
    lease_left_ms: int | None = None
    pending_run_id: str | None = None
    queued_ms: int | None = None
    now_ms: int | None = None
    reclaimed: str | None = None


AdmitResult = Admitted | AlreadyAdmitted | Busy | Joined


def _ms(value: Any) -> int | None:
    return int(value) if value not in (None, "") else None


def _made(value: str | Callable[[], str]) -> str:
    return value() if callable(value) else value


#: the fused path's message: (the broker's list, the message), or a function that makes it
#: when the step needs it (a lazy admission: see `Admit.__call__`)
Message = tuple[str, str] | Callable[[], tuple[str, str]]


class Admit(LuaScript):
    name = "admit"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, input: Any, *,
                 lease_ms: int, retention_s: int, on_conflict: ConflictPolicy,
                 idempotency_key: str | None, max_runs: int,
                 triggered_by: str | None = None,
                 message: Message | None = None, pending_ms: int = 900_000,
                 digest: str | Callable[[], str] = "", version: str = "") -> AdmitResult:
        """`input`: the run's input, or its JSON text (a str, as the service has it already).
        `message`: (the broker's list, the message) to push when admitted — the fused path
        (worker/client/message.py); None when the caller publishes afterwards. A function
        that makes it (on_conflict=reject only) is a lazy admission: the first call goes
        without the message, expecting a conflict, and only if the step needs it (the slot
        is free, or its holder ended) a second call carries it; the first wrote nothing.
        `digest` may be a function too: a lazy call leaves it out (only a join or a record
        reads it), so a 409 never hashes the input."""
        lazy = callable(message)
        if lazy and on_conflict is not ConflictPolicy.REJECT:
            raise ValueError("a lazy admission rejects on conflict")
        keys_ = [
            keys.slot(workflow_id), keys.run(workflow_id, run_id), keys.index(workflow_id),
            keys.idempotency(workflow_id, idempotency_key or "-"),
            keys.events(workflow_id, run_id), keys.slot(workflow_id), keys.outbox(workflow_id),
            keys.pending(workflow_id)]
        args = [
            run_id, workflow_id, input if isinstance(input, str) else compact_json(input),
            lease_ms, retention_s, on_conflict.value,
            keys.run_prefix(workflow_id), "1" if idempotency_key else "0",
            keys.events_prefix(workflow_id), triggered_by or "", max_runs, "", pending_ms,
            "" if lazy else _made(digest), version, "1" if lazy else "0"]
        if callable(message):
            reply = self._call(keys_, args)
            if reply[0] != AdmitReply.NEED_MESSAGE.value:
                return self._decode(reply)
            message = message()
            args[13], args[15] = _made(digest), "0"
        if message is not None:
            keys_[5], args[11] = message
        return self._decode(self._call(keys_, args))

    @staticmethod
    def _decode(reply: Any) -> AdmitResult:
        kind = AdmitReply(reply[0])
        if kind is AdmitReply.EXISTING:
            return AlreadyAdmitted(reply[1])
        reclaimed = reply[2] if reply[3] == ReleaseReason.RECLAIMED.value else None
        if kind is AdmitReply.CONFLICT:
            return Busy(reply[1], RunStatus(reply[7]) if reply[7] else None, _ms(reply[8]),
                        _ms(reply[9]), _ms(reply[10]), reply[11] or None, _ms(reply[12]),
                        _ms(reply[4]), reclaimed)
        if kind is AdmitReply.JOINED:
            return Joined(reply[1], reclaimed)
        created_ms, started = int(reply[4]), ms_to_seconds(reply[5])
        cls = Pending if kind is AdmitReply.PENDING else Admitted
        return cls(reply[1], created_ms, reply[2] or None,
                   ReleaseReason(reply[3]) if reply[3] else None,
                   created_ms / 1000 - started if started is not None else None,
                   reply[6] or None)
