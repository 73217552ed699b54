"""What a trigger answers when the workflow's slot is held (worker/client/service.py's trigger
asks admit.lua, which decides by `on_conflict` in the same atomic step):

- `reject`: 409 `test_run_in_progress` naming the holder, with what a caller needs to wait for
  it — its status, `started_at`, `last_heartbeat_at`, `lease_expires_at`, the `pending_run_id`
  — and `Retry-After`: the holder's remaining hard time limit if it runs, its remaining queue
  timeout if it waits for a worker, what is left of its lease if it was cancelled and its body
  is stopping; at least 1 s.
- `queue`: the run becomes the workflow's one pending run (202, `pending`), superseding an
  older one; it takes the slot in the step that frees it.
- `join`: the holder (or the pending run) triggered with the same input — equal as canonical
  JSON (`digest`) — and the same workflow version answers 200 with that run, `joined: true`;
  otherwise as `reject`.
- `replace`: the holder is cancelled; the new run takes the slot at once if the holder had no
  body yet (queued), else it is pending until the body is gone.

A reject of a workflow this process just found held (`HeldSlots`) goes without its task
message (lazy: lua/admission.py): the 409 it expects needs none, and the message is ~1 KB to
build, send and parse. If the slot was freed meanwhile the script asks for the message before
writing anything, and that one admission takes a second round trip.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from typing import Any

from ..core.lua import Busy
from ..core.runs import iso
from ..core.settings import Settings
from ..core.status import ConflictPolicy, RunStatus


def digest(input: Any) -> str:
    """What a join compares of the input: SHA-256 of it as canonical JSON (sorted keys, no
    spacing), so key order and spacing do not make it another input."""
    canonical = json.dumps(input if input is not None else {}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def retry_after(busy: Busy, settings: Settings) -> int:
    """Seconds until the holder is expected to be gone, at least 1 (ceil)."""
    now = busy.now_ms or 0
    left_ms: float | None = None
    if busy.status is RunStatus.RUNNING and busy.started_ms is not None:
        left_ms = busy.started_ms + settings.time_limit * 1000 - now
    elif busy.status is RunStatus.QUEUED and busy.queued_ms is not None:
        left_ms = busy.queued_ms + settings.queue_timeout * 1000 - now
    elif busy.lease_left_ms is not None and busy.lease_left_ms > 0:
        left_ms = busy.lease_left_ms  # its body stopping: at most the lease
    return max(1, math.ceil((left_ms or 0) / 1000))


def details(busy: Busy, settings: Settings) -> dict[str, Any]:
    """What the 409 (`RunInProgress`) says of `busy.holder`, beside its id."""
    lease_expires = (busy.now_ms + busy.lease_left_ms
                     if busy.now_ms is not None and busy.lease_left_ms is not None
                     and busy.lease_left_ms > 0 else None)
    return {"status": busy.status.value if busy.status else None,
            "started_at": iso(busy.started_ms), "last_heartbeat_at": iso(busy.heartbeat_ms),
            "lease_expires_at": iso(lease_expires), "pending_run_id": busy.pending_run_id,
            "retry_after": retry_after(busy, settings)}


class HeldSlots:
    """The workflows this process last found held by a live run, until the holder's lease
    said (the 409's `lease_left_ms`, at most HINT_S): a hint, never a decision — admit.lua
    decides in its atomic step. Bounded: at MAX entries it starts again."""

    MAX = 10_000
    HINT_S = 60.0

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def expects(self, workflow_id: str, policy: ConflictPolicy,
                idempotency_key: str | None) -> bool:
        """True if a trigger should expect a 409: a reject (no Idempotency-Key, which may
        answer an earlier run) of a workflow found held, its lease not yet over."""
        if policy is not ConflictPolicy.REJECT or idempotency_key is not None:
            return False
        until = self._until.get(workflow_id)
        return until is not None and until > time.monotonic()

    def held(self, workflow_id: str, busy: Busy) -> None:
        left = min(self.HINT_S, max(0, busy.lease_left_ms or 0) / 1000)
        with self._lock:
            if len(self._until) >= self.MAX:
                self._until.clear()
            self._until[workflow_id] = time.monotonic() + left

    def freed(self, workflow_id: str) -> None:
        self._until.pop(workflow_id, None)
