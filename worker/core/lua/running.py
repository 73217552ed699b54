"""The wrappers a worker calls while a run executes: start.lua (the start check), heartbeat.lua
(the lease renewal) and append_log.lua (a log line, in the record and on the event stream)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..keys import Keys
from ..status import ReleaseReason, RunStatus
from .base import LuaScript, ms_to_seconds
from .replies import BeatVerdict, LogReply, StartReply

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
                            keys.events(workflow_id, run_id), keys.outbox(workflow_id),
                            keys.pending(workflow_id)],
                           [run_id, worker, lease_ms, queue_timeout_ms, pid])
        kind = StartReply(reply[0])
        if kind is StartReply.STARTED:
            return Started(json.loads(reply[1]), ms_to_seconds(reply[2]))
        if kind is StartReply.REFUSED:
            return Refused(RunStatus(reply[1]), ReleaseReason(reply[2]) if reply[2] else None)
        return Refused(None)


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
                            keys.events(workflow_id, run_id), keys.outbox(workflow_id),
                            keys.pending(workflow_id)],
                           [run_id, workflow_id, ttl_ms, worker, retention_s, pid])
        verdict, status = BeatVerdict(reply[0]), RunStatus(reply[1]) if len(reply) > 1 else None
        if len(reply) > 2:  # TERMINAL, ended by this call: {…, duration_ms}
            return Beat(verdict, status, True, ms_to_seconds(reply[2]))
        return Beat(verdict, status)


# -- append_log.lua -----------------------------------------------------------------------------

class AppendLog(LuaScript):
    """A batch of a run's lines, oldest first: one reply per line (`queue` puts the call on a
    pipeline, to go out with another script's call in one round trip)."""

    name = "append_log"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, lines: list[str], *,
                 max_lines: int, max_bytes: int, retention_s: int) -> list[LogReply]:
        return self.decode(self.queue(keys, workflow_id, run_id, lines, max_lines=max_lines,
                                      max_bytes=max_bytes, retention_s=retention_s))

    def queue(self, keys: Keys, workflow_id: str, run_id: str, lines: list[str], *,
              max_lines: int, max_bytes: int, retention_s: int, client: Any = None) -> Any:
        return self._call(
            [keys.run(workflow_id, run_id), keys.logs(workflow_id, run_id),
             keys.events(workflow_id, run_id)],
            [max_lines, max_bytes, retention_s, *lines], client=client)

    @staticmethod
    def decode(reply: Any) -> list[LogReply]:
        return [LogReply(r) for r in reply]
