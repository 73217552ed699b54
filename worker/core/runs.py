"""The run record as the API and the CLI see it, decoded from its Redis hash."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .status import ErrorType, ReleaseReason, RunStatus


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
        )

    def to_dict(self) -> dict[str, Any]:
        """The public shape of a run (the API's and the CLI's)."""
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
        }
