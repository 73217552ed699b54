"""admit.lua's wrapper: a trigger takes the slot and writes the queued record in one step
(and, on the fused path, pushes the task message in that same step)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..keys import Keys
from ..status import ConflictPolicy, ReleaseReason
from .base import LuaScript, compact_json, ms_to_seconds
from .replies import AdmitReply


@dataclass(frozen=True)
class Admitted:
    """The new run holds the slot; `previous_holder` is the run it took the slot from, and
    `previous_release` how (RECLAIMED: that run had ended; REPLACED: on_conflict=replace).
    `previous_duration_s`: a replaced holder's start to its end (None: it never started)."""

    run_id: str
    created_ms: int
    previous_holder: str | None = None
    previous_release: ReleaseReason | None = None
    previous_duration_s: float | None = None


@dataclass(frozen=True)
class AlreadyAdmitted:
    """The Idempotency-Key already admitted this run: nothing was written."""

    run_id: str


@dataclass(frozen=True)
class Busy:
    """Another live run holds the slot (on_conflict=reject): nothing was written."""

    holder: str


AdmitResult = Admitted | AlreadyAdmitted | Busy


class Admit(LuaScript):
    name = "admit"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, input: Any, *,
                 lease_ms: int, retention_s: int, on_conflict: ConflictPolicy,
                 idempotency_key: str | None, max_runs: int,
                 triggered_by: str | None = None,
                 message: tuple[str, str] | None = None) -> AdmitResult:
        """`input`: the run's input, or its JSON text (a str, as the service has it already).
        `message`: (the broker's list, the message) to push when admitted — the fused path
        (worker/client/message.py); None when the caller publishes afterwards."""
        reply = self._call([
            keys.slot(workflow_id), keys.run(workflow_id, run_id), keys.index(workflow_id),
            keys.idempotency(workflow_id, idempotency_key or "-"),
            keys.events(workflow_id, run_id),
            message[0] if message else keys.slot(workflow_id), keys.outbox(workflow_id),
        ], [
            run_id, workflow_id, input if isinstance(input, str) else compact_json(input),
            lease_ms, retention_s, on_conflict.value,
            keys.run_prefix(workflow_id), "1" if idempotency_key else "0",
            keys.events_prefix(workflow_id), triggered_by or "", max_runs,
            message[1] if message else "",
        ])
        kind = AdmitReply(reply[0])
        if kind is AdmitReply.CONFLICT:
            return Busy(reply[1])
        if kind is AdmitReply.EXISTING:
            return AlreadyAdmitted(reply[1])
        created_ms, started = int(reply[4]), ms_to_seconds(reply[5])
        return Admitted(reply[1], created_ms, reply[2] or None,
                        ReleaseReason(reply[3]) if reply[3] else None,
                        created_ms / 1000 - started if started is not None else None)
