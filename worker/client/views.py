"""What the service answers besides runs (worker/client/service.py returns them; the web
shapes them with its response models): a trigger's outcome, a page of a run's log, a workflow
with the run holding its slot. And what an Idempotency-Key is bound to (`body_hash`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..core.runs import Run
from ..workflows import Workflow


@dataclass(frozen=True)
class Triggered:
    run: Run
    created: bool  # False when an idempotency key returned an earlier run, or a join
    joined: bool = False  # on_conflict=join answered with the run in progress (or pending)


@dataclass(frozen=True)
class LogPage:
    run_id: str
    offset: int
    total: int  # lines the run's log holds now (the oldest may have been dropped)
    lines: list[str]

    @property
    def next_offset(self) -> int | None:
        end = self.offset + len(self.lines)
        return end if end < self.total else None


@dataclass(frozen=True)
class WorkflowState:
    workflow: Workflow
    active_run_id: str | None
    pending_run_id: str | None = None  # on_conflict=queue: the run that takes the slot next
    active_run: Run | None = None  # read only when asked for one workflow
    pending_run: Run | None = None  # read only when asked for one workflow


def body_hash(input: Any) -> str:
    """What an Idempotency-Key is bound to: a SHA-256 of the trigger's body (its `input`, the
    body's one field) as canonical JSON, so key order and spacing do not make it another body.
    The earlier run's side is its stored input, written in the same atomic step as the key."""
    canonical = json.dumps(input if input is not None else {}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
