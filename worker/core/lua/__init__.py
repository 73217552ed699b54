"""The Lua scripts (`*.lua` beside this file) and one typed wrapper per script.

Every change of a slot or of a run's status happens inside one of these scripts, atomically;
each touches only keys of one workflow (one hash tag), so it is atomic on a cluster too. A
script's header lists its KEYS, ARGV and every reply; its wrapper here builds the arguments
from typed values and turns the reply into a typed value, so nothing else indexes a reply.

A script's source is: the vocabulary generated from `worker/core/status.py` and the reply enums
below (`STATUS.RUNNING`, `REASON.REPLACED`, `TERMINAL[status]`, `ADMIT.CONFLICT`, …; an unknown
member is an error, not a silent nil), then `lib.lua` (`release()`: the one place a slot is
freed), then the script's own file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import cache
from pathlib import Path
from typing import Any, ClassVar

import redis
from redis.commands.core import Script

from ..keys import Keys
from ..runs import SUMMARY_FIELDS, Run
from ..status import TERMINAL, ConflictPolicy, ErrorType, EventKind, ReleaseReason, RunStatus

HERE = Path(__file__).parent


class AdmitReply(StrEnum):
    ADMITTED = "admitted"
    EXISTING = "existing"
    CONFLICT = "conflict"


class StartReply(StrEnum):
    STARTED = "started"
    REFUSED = "refused"
    MISSING = "missing"


class FinishReply(StrEnum):
    FINISHED = "finished"
    UNCHANGED = "unchanged"
    MISSING = "missing"


class FinishMode(StrEnum):
    """Who is finishing the run; see finish.lua's header."""

    OUTCOME = "outcome"
    CANCEL = "cancel"
    QUEUED_ONLY = "queued_only"


class ReadFields(StrEnum):
    """What read.lua hands back: the whole run, or its summary (no input, result or logs)."""

    FULL = "full"
    SUMMARY = "summary"


class LogReply(StrEnum):
    APPENDED = "appended"
    CUT = "cut"
    FULL = "full"
    NO_RUN = "no_run"


class BeatVerdict(StrEnum):
    RENEWED = "renewed"
    REACQUIRED = "reacquired"
    NOT_OURS = "not_ours"
    TERMINAL = "terminal"
    NOT_STARTED = "not_started"


#: Lua table name → the enum it is generated from.
VOCABULARY: dict[str, type[Enum]] = {
    "STATUS": RunStatus, "ERROR": ErrorType, "REASON": ReleaseReason, "POLICY": ConflictPolicy,
    "ADMIT": AdmitReply, "START": StartReply, "FINISH": FinishReply, "FINISH_MODE": FinishMode,
    "BEAT": BeatVerdict, "EVENT": EventKind, "READ": ReadFields, "LOG": LogReply,
}


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@cache
def prelude() -> str:
    """The vocabulary as Lua tables; reading a member a table lacks raises inside Redis."""
    lines = [
        "-- generated from worker/core/status.py and worker/core/lua/__init__.py when loaded",
        "local function enum(name, members)",
        "  return setmetatable(members, {__index = function(_, key)",
        "    error(name .. ' has no member ' .. tostring(key)) end})",
        "end",
    ]
    for table, members in VOCABULARY.items():
        body = ", ".join(f"{m.name}={_lua_string(m.value)}" for m in members)
        lines.append(f"local {table} = enum('{table}', {{{body}}})")
    terminal = ", ".join(f"[{_lua_string(s.value)}]=true" for s in sorted(TERMINAL))
    lines.append(f"local TERMINAL = {{{terminal}}}")
    # the record's fields a runs list shows (worker/core/runs.py): lib.lua's summary()
    summary = ", ".join(_lua_string(f.stored) for f in SUMMARY_FIELDS if f.stored)
    lines.append(f"local SUMMARY_FIELDS = {{{summary}}}")
    return "\n".join(lines) + "\n"


@cache
def source(name: str) -> str:
    """The full text Redis runs for `<name>.lua`."""
    return prelude() + (HERE / "lib.lua").read_text() + (HERE / f"{name}.lua").read_text()


def _run(snapshot: Any) -> Run | None:
    """A run from a script's `{HGETALL, log lines, …}`."""
    if not snapshot:
        return None
    flat, logs = snapshot[0], snapshot[1]
    return Run.from_redis(dict(zip(flat[::2], flat[1::2], strict=True)), logs)


def _seconds(ms: Any) -> float | None:
    """A script's milliseconds ('' or nil: none) as seconds."""
    return int(ms) / 1000 if ms not in (None, "") else None


def _compact(value: Any) -> str:
    """Compact JSON as UTF-8 text: stored at the size TEST_RUN_MAX_INPUT_BYTES measured (ASCII
    escapes would store a non-ASCII character in up to three times its bytes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class LuaScript:
    """One script, registered on a client (EVALSHA, loaded again on NOSCRIPT)."""

    name: ClassVar[str]

    def __init__(self, client: redis.Redis) -> None:
        self._script: Script = client.register_script(source(self.name))

    def load(self) -> None:
        """SCRIPT LOAD now, so the first call is one EVALSHA (no NOSCRIPT round trip)."""
        self._script.sha = self._script.registered_client.script_load(self._script.script)

    def _call(self, keys: list[str], args: list[Any], client: Any = None) -> Any:
        return self._script(keys=keys, args=args, client=client)


# -- admit.lua ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Admitted:
    """The new run holds the slot; `previous_holder` is the run it took the slot from, and
    `previous_release` how (RECLAIMED: that run had ended; REPLACED: on_conflict=replace)."""

    run_id: str
    created_ms: int
    previous_holder: str | None = None
    previous_release: ReleaseReason | None = None


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
            message[0] if message else keys.slot(workflow_id),
        ], [
            run_id, workflow_id, input if isinstance(input, str) else _compact(input),
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
        return Admitted(reply[1], int(reply[4]), reply[2] or None,
                        ReleaseReason(reply[3]) if reply[3] else None)


# -- start.lua ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Started:
    """`queue_wait_s`: admission to start (None when the call repeated an earlier start)."""

    input: Any
    queue_wait_s: float | None = None


@dataclass(frozen=True)
class Refused:
    """The run must not execute; `status` is what it is now (None: no record). `ended`: the
    release reason this very call recorded when it ended the run (EXPIRED: its queue time ran
    out; LEASE_EXPIRED: its lease had lapsed), else None."""

    status: RunStatus | None
    ended: ReleaseReason | None = None


class Start(LuaScript):
    name = "start"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, *, worker: str, pid: int,
                 lease_ms: int, queue_timeout_ms: int) -> Started | Refused:
        reply = self._call([keys.slot(workflow_id), keys.run(workflow_id, run_id),
                            keys.events(workflow_id, run_id)],
                           [run_id, worker, lease_ms, queue_timeout_ms, pid])
        kind = StartReply(reply[0])
        if kind is StartReply.STARTED:
            return Started(json.loads(reply[1]), _seconds(reply[2]))
        if kind is StartReply.REFUSED:
            return Refused(RunStatus(reply[1]), ReleaseReason(reply[2]) if reply[2] else None)
        return Refused(None)


# -- finish.lua ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finished:
    """`ended`: this call ended the run (else it had ended already, or was missing).
    `status`: the run's status before this call when it ended it, else as it stays.
    `released`: this call freed the slot. `run`: the record (CANCEL mode only).
    `settled`: this call found the run's lease lapsed and recorded `status` (expired/lost)
    instead of the requested ending. `duration_s`: start to end (None: it never started)."""

    reply: FinishReply
    status: RunStatus | None = None
    released: bool = False
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
            keys.events(workflow_id, run_id),
        ], [
            run_id, workflow_id, status.value, error_type.value if error_type else "",
            error or "", result_json, reason.value, worker or "", retention_s, mode.value,
        ])
        kind = FinishReply(reply[0])
        if kind is FinishReply.MISSING:
            return Finished(kind)
        started, ended = _seconds(reply[5]), _seconds(reply[6])
        return Finished(kind, RunStatus(reply[1]) if reply[1] else None, bool(reply[2]),
                        _run(reply[3]), settled=bool(reply[4]),
                        duration_s=ended - started if started is not None and ended is not None
                        else None)


# -- read.lua -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunSnapshot:
    """A run as read, with the first and last ids of its event stream at that instant (None:
    no stream): the events after `last_event_id` are exactly what happened since. `settled`:
    this read found the run's lease lapsed and ended it (its status says how)."""

    run: Run
    first_event_id: str | None
    last_event_id: str | None
    settled: bool = False


class Read(LuaScript):
    name = "read"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str,
                 client: Any = None) -> Run | None:
        return self.decode(self.queue(keys, workflow_id, run_id, client))

    @staticmethod
    def settled(reply: Any) -> bool:
        """This read ended the run (a lapsed lease: it is now expired or lost)."""
        return bool(reply) and len(reply) > 4 and bool(reply[4])

    def queue(self, keys: Keys, workflow_id: str, run_id: str, client: Any = None,
              fields: ReadFields = ReadFields.FULL) -> Any:
        """Run (or, on a pipeline, queue) the read; `decode` turns its reply into a Run."""
        return self._call([keys.slot(workflow_id), keys.run(workflow_id, run_id),
                           keys.logs(workflow_id, run_id), keys.events(workflow_id, run_id)],
                          [run_id, fields.value], client)

    @staticmethod
    def decode(reply: Any) -> Run | None:
        return _run(reply)

    def snapshot(self, keys: Keys, workflow_id: str, run_id: str) -> RunSnapshot | None:
        """The run and the bounds of its event stream, read in one atomic step."""
        reply = self.queue(keys, workflow_id, run_id)
        run = _run(reply)
        if run is None:
            return None
        return RunSnapshot(run, reply[2] or None, reply[3] or None, self.settled(reply))


# -- append_log.lua -----------------------------------------------------------------------------

class AppendLog(LuaScript):
    name = "append_log"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, line: str, *,
                 max_lines: int, max_bytes: int, retention_s: int) -> LogReply:
        return LogReply(self._call(
            [keys.run(workflow_id, run_id), keys.logs(workflow_id, run_id),
             keys.events(workflow_id, run_id)],
            [line, max_lines, max_bytes, retention_s]))


# -- heartbeat.lua ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Beat:
    """`ended`: this call recorded the run lost (another run took its slot); then
    `duration_s` is its start to now."""

    verdict: BeatVerdict
    status: RunStatus | None = None
    ended: bool = False
    duration_s: float | None = None


class Heartbeat(LuaScript):
    name = "heartbeat"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, *, worker: str, pid: int,
                 ttl_ms: int, retention_s: int) -> Beat:
        reply = self._call([keys.slot(workflow_id), keys.run(workflow_id, run_id),
                            keys.events(workflow_id, run_id)],
                           [run_id, workflow_id, ttl_ms, worker, retention_s, pid])
        verdict, status = BeatVerdict(reply[0]), RunStatus(reply[1]) if len(reply) > 1 else None
        if len(reply) > 2:  # TERMINAL, ended by this call: {…, duration_ms}
            return Beat(verdict, status, True, _seconds(reply[2]))
        return Beat(verdict, status)


# -- force_release.lua --------------------------------------------------------------------------

@dataclass(frozen=True)
class ForceReleased:
    """The run whose slot was freed; `ended`: this call also recorded it cancelled."""

    holder: str
    ended: bool


class ForceRelease(LuaScript):
    name = "force_release"

    def __call__(self, keys: Keys, workflow_id: str, *, reason: ReleaseReason,
                 expected: str | None) -> ForceReleased | None:
        """The run whose slot this freed, or None."""
        reply = self._call([keys.slot(workflow_id)],
                           [keys.run_prefix(workflow_id), reason.value, expected or "",
                            keys.events_prefix(workflow_id)])
        return ForceReleased(str(reply[0]), bool(reply[1])) if reply else None


# -- advertise.lua / workers.lua (worker liveness) -------------------------------------------

class Advertise(LuaScript):
    name = "advertise"

    def __call__(self, keys: Keys, queue: str, hostname: str, *, ttl_ms: int,
                 info: dict[str, str] | None = None) -> int:
        """Advertise `hostname` on `queue` for `ttl_ms` (0: withdraw); the workers online."""
        flat = [part for pair in (info or {}).items() for part in pair]
        return int(self._call([keys.workers(queue), keys.worker_info_prefix() + hostname],
                              [hostname, ttl_ms, *flat]))


@dataclass(frozen=True)
class WorkerInfo:
    hostname: str
    seconds_left: float
    info: dict[str, str]


class Workers(LuaScript):
    name = "workers"

    def count(self, keys: Keys, queue: str, client: Any = None) -> Any:
        """The workers online on `queue` (on a pipeline: queued; `int(reply[0])` later)."""
        reply = self._call([keys.workers(queue)], [keys.worker_info_prefix(), "0"], client)
        return reply if client is not None else int(reply[0])

    def list(self, keys: Keys, queue: str) -> list[WorkerInfo]:
        reply = self._call([keys.workers(queue)], [keys.worker_info_prefix(), "1"])
        return [WorkerInfo(str(host), int(left) / 1000,
                           dict(zip(flat[::2], flat[1::2], strict=True)))
                for host, left, flat in reply[1:]]


ALL: tuple[type[LuaScript], ...] = (Admit, Start, Finish, Read, Heartbeat, ForceRelease,
                                    Advertise, Workers, AppendLog)
