"""Request and response shapes, in one place: routes never build JSON ad hoc."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from flask import Request

from worker.errors import InvalidRequest
from worker.keys import WORKFLOW_ID_PATTERN, valid_workflow_id
from worker.runs import Run
from worker.service import WorkflowState
from worker.status import ConflictPolicy

MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
_TRIGGER_FIELDS = {"input"}


@dataclass(frozen=True)
class TriggerRequest:
    input: dict[str, Any]
    on_conflict: ConflictPolicy
    idempotency_key: str | None


def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON: Python accepts them, and would echo invalid JSON back."""
    raise ValueError(f"{name} is not valid JSON")


def workflow_id(raw: str) -> str:
    if not valid_workflow_id(raw):
        raise InvalidRequest(f"workflow id must match {WORKFLOW_ID_PATTERN}",
                             field="workflow_id")
    return raw


def trigger_request(request: Request) -> TriggerRequest:
    """Parse `{"input": {...}}` (body optional); the 413 is raised by Flask while reading."""
    body = request.get_data(cache=True)
    payload: Any = {}
    if body.strip():
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise InvalidRequest("request body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object")
    unknown = sorted(set(payload) - _TRIGGER_FIELDS)
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    value = payload.get("input")
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidRequest("input must be a JSON object", field="input")
    try:
        on_conflict = ConflictPolicy(request.args.get("on_conflict", ConflictPolicy.REJECT))
    except ValueError:
        choices = " or ".join(repr(p.value) for p in ConflictPolicy)
        raise InvalidRequest(f"on_conflict must be {choices}", field="on_conflict") from None
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= 255 and key.isprintable()):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable characters",
                             field="Idempotency-Key")
    return TriggerRequest(value, on_conflict, key)


def list_limit(request: Request) -> int:
    raw = request.args.get("limit")
    if raw is None:
        return DEFAULT_LIST_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}",
                             field="limit")
    return limit


def run_json(run: Run) -> dict[str, Any]:
    return run.to_dict()


def workflow_json(state: WorkflowState) -> dict[str, Any]:
    out: dict[str, Any] = {"id": state.workflow.id, "description": state.workflow.description,
                           "active_run_id": state.active_run_id}
    if state.active_run is not None:
        data = state.active_run.to_dict()
        out["active_run"] = {k: data[k] for k in (
            "run_id", "status", "created_at", "started_at", "last_heartbeat_at", "worker")}
    return out
