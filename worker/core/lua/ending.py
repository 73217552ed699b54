"""The wrappers that end a run or free a slot: finish.lua (an outcome, a cancel, a failed
publish), force_release.lua (the operator's release, reconcile) and promote.lua (the upkeep
of a pending run whose slot's lease lapsed)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..keys import Keys
from ..runs import Run
from ..status import ErrorType, ReleaseReason, RunStatus
from .base import LuaScript, ms_to_seconds, run_from_reply
from .replies import FinishMode, FinishReply

# -- finish.lua ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finished:
    """`ended`: this call ended the run (else it had ended already, or was missing).
    `status`: the run's status before this call when it ended it, else as it stays.
    `released`: why this call freed the slot (as recorded: a stopped body's release says why
    it was stopped), else None. `run`: the record (CANCEL mode only).
    `settled`: this call found the run's lease lapsed and recorded `status` (expired/lost)
    instead of the requested ending. `duration_s`: start to end (None: it never started)."""

    reply: FinishReply
    status: RunStatus | None = None
    released: ReleaseReason | None = None
    run: Run | None = None
    settled: bool = False
    duration_s: float | None = None

    @property
    def ended(self) -> bool:
        return self.reply is FinishReply.FINISHED


class Finish(LuaScript):
    name = "finish"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, *, status: RunStatus,
                 error_type: ErrorType | None, error: str | None, result_json: str,
                 reason: ReleaseReason, worker: str | None, retention_s: int,
                 mode: FinishMode) -> Finished:
        reply = self._call([
            keys.slot(workflow_id), keys.run(workflow_id, run_id), keys.logs(workflow_id, run_id),
            keys.events(workflow_id, run_id), keys.outbox(workflow_id), keys.pending(workflow_id),
        ], [
            run_id, workflow_id, status.value, error_type.value if error_type else "",
            error or "", result_json, reason.value, worker or "", retention_s, mode.value,
        ])
        kind = FinishReply(reply[0])
        if kind is FinishReply.MISSING:
            return Finished(kind)
        started, ended = ms_to_seconds(reply[5]), ms_to_seconds(reply[6])
        return Finished(kind, RunStatus(reply[1]) if reply[1] else None,
                        ReleaseReason(reply[2]) if reply[2] else None,
                        run_from_reply(reply[3]), settled=bool(reply[4]),
                        duration_s=ended - started if started is not None and ended is not None
                        else None)


# -- force_release.lua --------------------------------------------------------------------------

@dataclass(frozen=True)
class ForceReleased:
    """The run whose slot was freed; `ended`: this call also recorded it cancelled;
    `duration_s`: its start to this call (None: it never started)."""

    holder: str
    ended: bool
    duration_s: float | None = None


class ForceRelease(LuaScript):
    name = "force_release"

    def __call__(self, keys: Keys, workflow_id: str, *, reason: ReleaseReason,
                 expected: str | None) -> ForceReleased | None:
        """The run whose slot this freed, or None."""
        reply = self._call([keys.slot(workflow_id), keys.outbox(workflow_id),
                            keys.pending(workflow_id)],
                           [keys.run_prefix(workflow_id), reason.value, expected or "",
                            keys.events_prefix(workflow_id)])
        if not reply:
            return None
        started, now = ms_to_seconds(reply[2]), ms_to_seconds(reply[3])
        return ForceReleased(str(reply[0]), bool(reply[1]),
                             now - started if started is not None and now is not None else None)


# -- promote.lua --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Upkept:
    """What promote.lua did: the run it promoted into a lapsed slot, the pending run it ended
    expired (its pending timeout), or neither (None)."""

    promoted: str | None = None
    expired: str | None = None


class Promote(LuaScript):
    name = "promote"

    def __call__(self, keys: Keys, workflow_id: str) -> Upkept:
        reply = self._call(self._keys(keys, workflow_id), [])
        return Upkept(reply[0] or None, reply[1] or None)

    @staticmethod
    def _keys(keys: Keys, workflow_id: str) -> list[str]:
        return [keys.slot(workflow_id), keys.pending(workflow_id), keys.outbox(workflow_id)]

    def queue(self, keys: Keys, workflow_id: str, pipe: Any) -> None:
        """Queue the call on a pipeline (promote.lua never asks for keys); `decode` reads it."""
        self._call(self._keys(keys, workflow_id), [], pipe)

    def decode(self, raw: Any) -> Upkept:
        """A queued call's reply, still wrapped (text.py): its promotion is handed on here."""
        reply = self.unwrap(raw)
        return Upkept(reply[0] or None, reply[1] or None)
