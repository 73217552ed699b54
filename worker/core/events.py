"""A run's event stream: what happened to it, in order, for watchers (the page, `curl -N`).

Each run has a Redis Stream (`<prefix>:{<workflow>}:events:<run>`) beside its record. Status
changes are appended by the Lua script that makes them (lib.lua's `emit_status`), in the same
atomic step, so the stream can never disagree with the record; log lines are appended with the
run's `logs` in one MULTI (RunStore.append_log). The web serves it as Server-Sent Events
(web/events.py) through `worker/client/watch.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .status import EventKind, RunStatus

#: entries one XREAD returns at most (a burst of log lines arrives in a few reads)
EVENTS_PER_READ = 200


@dataclass(frozen=True)
class RunEvent:
    id: str  # the stream entry id, `<ms>-<seq>`: what a client resumes from (Last-Event-ID)
    kind: EventKind
    status: RunStatus | None = None  # STATUS events
    at_ms: int | None = None         # STATUS events: when the script changed it
    line: str | None = None          # LOG events

    @classmethod
    def from_redis(cls, event_id: str, fields: dict[str, str]) -> RunEvent:
        kind = EventKind(fields["kind"])
        if kind is EventKind.STATUS:
            return cls(event_id, kind, status=RunStatus(fields["status"]),
                       at_ms=int(fields["at"]))
        return cls(event_id, kind, line=fields.get("line", ""))

    @property
    def terminal(self) -> bool:
        return self.status is not None and self.status.terminal


#: a stream id as Redis writes it: ASCII digits only (`str.isdigit` also takes `²`, which `int`
#: refuses), each part within 64 bits
_STREAM_ID_RE = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


def stream_position(event_id: str | None) -> tuple[int, int] | None:
    """A stream id as a comparable pair, or None if it is not one (`<ms>-<seq>`): a client's
    Last-Event-ID that is anything else is ignored, never an error."""
    match = _STREAM_ID_RE.fullmatch(event_id or "")
    if match is None:
        return None
    return int(match.group(1)), int(match.group(2))


def clip_line(line: str, limit: int) -> str:
    """A log line of at most `limit` characters (plus a marker saying how much was cut)."""
    if len(line) <= limit:
        return line
    return f"{line[:limit]} … [{len(line) - limit} characters cut]"
