"""The run record as the API and the CLI see it, decoded from its Redis hash.

A run's fields are declared once, in `RUN_FIELDS`: the API's name, the record hash's field the
Lua scripts write, its type and whether a runs list shows it. The response models
(web/schemas/) and the Lua prelude's `SUMMARY_FIELDS` (worker/core/lua/) are built from it, and
tests/unit/test_runs.py fails when a script writes a record field nobody declared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from .status import DeliveryOutcome, ErrorType, ReleaseReason, RunStatus, WebhookTarget


class RunField(NamedTuple):
    """One field of a run as the API shows it."""

    name: str
    #: the record hash's field the scripts write (None: not a field of the hash)
    stored: str | None
    #: its type in the API; a timestamp is `str | None` with `timestamp` set
    type: Any
    #: shown in the runs list's summaries (input, result and logs are not: they may be large)
    summary: bool = True
    timestamp: bool = False
    description: str | None = None


class Delivery(TypedDict):
    """One webhook attempt for a run's ending, as its `deliveries` list shows it."""

    webhook_id: str
    target: WebhookTarget
    attempt: int
    at: str
    status_code: int | None
    error: str | None
    outcome: DeliveryOutcome


def _ts(name: str, stored: str) -> RunField:
    """An ISO-8601 UTC time in the API, milliseconds (Redis' clock) in the record."""
    return RunField(name, stored, str | None, timestamp=True)


#: Every field of a run, in the order the API shows them.
RUN_FIELDS: tuple[RunField, ...] = (
    RunField("run_id", "run_id", str),
    RunField("workflow_id", "workflow_id", str),
    RunField("type", "type", Literal["test"]),
    RunField("status", "status", RunStatus),
    _ts("created_at", "created_ms"),
    _ts("started_at", "started_ms"),
    _ts("finished_at", "finished_ms"),
    RunField("input", "input", Any, summary=False),
    RunField("result", "result", Any, summary=False),
    RunField("error", "error", str | None),
    RunField("error_type", "error_type", ErrorType | None),
    RunField("logs", None, list[str], summary=False),  # the run's log list, beside the hash
    RunField("worker", "worker", str | None),
    RunField("release_reason", "release_reason", ReleaseReason | None),
    _ts("released_at", "released_ms"),
    _ts("last_heartbeat_at", "heartbeat_ms"),
    # the record was rebuilt by its worker after Redis lost it (restarted empty)
    RunField("record_lost", "record_lost", bool),
    RunField("triggered_by", "triggered_by", str | None,
             description="the name of the API token that triggered it"),
    RunField("callback_url", "callback_url", str | None, summary=False,
             description="where the trigger asked for this run's ending to be POSTed"),
    RunField("deliveries", "deliveries", list[Delivery], summary=False,
             description="each webhook attempt for this run's ending, oldest first"),
    RunField("superseded_by", "superseded_by", str | None,
             description="the newer pending run that took this pending run's place"),
    RunField("workflow_version", "workflow_version", str | None,
             description="the workflow's version when triggered (what on_conflict=join "
             "compares, beside the input)"),
    RunField("promoted_at", "promoted_ms", str | None, timestamp=True,
             description="when this run, pending, took the freed slot (its queue timeout "
             "counts from then)"),
)

#: Fields of the record hash that only the scripts read: never shown.
INTERNAL_FIELDS: tuple[str, ...] = (
    "pid",               # the pool process running the body (start.lua, heartbeat.lua)
    "idempotency_key",   # the key that admitted it, deleted with it (admit.lua, lib.lua)
    "previous_holder",   # the run it took the slot from, and how (admit.lua's repeat answer)
    "previous_release",
    "log_bytes",         # bytes its log used so far (append_log.lua)
    "input_digest",      # its input as canonical JSON, hashed: what a join compares
    "pending_until_ms",  # a pending run: when its pending time is over (admit.lua, lib.lua)
    "lease_ms",          # a pending run: the queued lease it gets when promoted
    "queue",             # a pending run: the list its stored message is pushed onto
    "message",           # a pending run: its task message, pushed when promoted (fused)
    "superseded_run",    # the pending run this one superseded (admit.lua's repeat answer)
    "stopping",          # cancelled while running: its slot waits for the body to stop (the
                         # release reason to record then)
    "publish_due",       # promoted with no stored message: its releaser publishes it
)

#: The fields a runs list shows by default (its `?fields=full` shows RUN_FIELDS).
SUMMARY_FIELDS: tuple[RunField, ...] = tuple(f for f in RUN_FIELDS if f.summary)


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _text(raw: dict[str, str], name: str) -> str | None:
    value = raw.get(name)
    return value if value else None


def _ms(raw: dict[str, str], name: str) -> int | None:
    value = raw.get(name)
    return int(value) if value else None


def _json(raw: dict[str, str], name: str) -> Any:
    value = raw.get(name)
    return json.loads(value) if value else None


@dataclass(frozen=True)
class Run:
    run_id: str
    workflow_id: str
    status: RunStatus
    created_ms: int | None = None
    started_ms: int | None = None
    finished_ms: int | None = None
    input: Any = None
    result: Any = None
    error: str | None = None
    error_type: ErrorType | None = None
    worker: str | None = None
    release_reason: ReleaseReason | None = None
    released_ms: int | None = None
    heartbeat_ms: int | None = None
    record_lost: bool = False
    #: the name of the API token that triggered it (None: no name known)
    triggered_by: str | None = None
    logs: list[str] = field(default_factory=list)
    callback_url: str | None = None
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    superseded_by: str | None = None
    workflow_version: str | None = None
    promoted_ms: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status.terminal

    @classmethod
    def from_redis(cls, raw: dict[str, str], logs: list[str] | None = None) -> Run:
        error_type = _text(raw, "error_type")
        reason = _text(raw, "release_reason")
        return cls(
            run_id=raw["run_id"],
            workflow_id=raw["workflow_id"],
            status=RunStatus(raw["status"]),
            created_ms=_ms(raw, "created_ms"),
            started_ms=_ms(raw, "started_ms"),
            finished_ms=_ms(raw, "finished_ms"),
            input=_json(raw, "input"),
            result=_json(raw, "result"),
            error=_text(raw, "error"),
            error_type=ErrorType(error_type) if error_type else None,
            worker=_text(raw, "worker"),
            release_reason=ReleaseReason(reason) if reason else None,
            released_ms=_ms(raw, "released_ms"),
            heartbeat_ms=_ms(raw, "heartbeat_ms"),
            record_lost=raw.get("record_lost") == "1",
            triggered_by=_text(raw, "triggered_by"),
            logs=list(logs or []),
            callback_url=_text(raw, "callback_url"),
            deliveries=_json(raw, "deliveries") or [],
            superseded_by=_text(raw, "superseded_by"),
            workflow_version=_text(raw, "workflow_version"),
            promoted_ms=_ms(raw, "promoted_ms"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The public shape of a run (the API's and the CLI's), in RUN_FIELDS' order."""
        return {
            "run_id": self.run_id,
            "workflow_id": self.workflow_id,
            "type": "test",
            "status": self.status.value,
            "created_at": iso(self.created_ms),
            "started_at": iso(self.started_ms),
            "finished_at": iso(self.finished_ms),
            "input": self.input,
            "result": self.result,
            "error": self.error,
            "error_type": self.error_type.value if self.error_type else None,
            "logs": self.logs,
            "worker": self.worker,
            "release_reason": self.release_reason.value if self.release_reason else None,
            "released_at": iso(self.released_ms),
            "last_heartbeat_at": iso(self.heartbeat_ms),
            # the record was rebuilt by its worker after Redis lost it (restarted empty)
            "record_lost": self.record_lost,
            "triggered_by": self.triggered_by,
            "callback_url": self.callback_url,
            "deliveries": self.deliveries,
            "superseded_by": self.superseded_by,
            "workflow_version": self.workflow_version,
            "promoted_at": iso(self.promoted_ms),
        }
