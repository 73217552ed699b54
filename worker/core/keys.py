"""Redis key names and run ids.

Every key of one workflow carries the workflow id as a Redis Cluster hash tag, so one Lua
script can read the holder's run and take the slot atomically on a cluster too. A run id embeds
its workflow id, which is how `GET /api/test-runs/<run_id>` finds the record without a second
(cross-slot) index.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
# fullmatch, never match: `$` also matches before a trailing newline ("echo\n" would pass)
WORKFLOW_ID_RE = re.compile(WORKFLOW_ID_PATTERN.strip("^$"))
_RUN_ID_RE = re.compile(r"(?P<workflow>" + WORKFLOW_ID_RE.pattern + r")-(?P<hex>[0-9a-f]{32})")
#: characters a key prefix must not hold: hash-tag braces and SCAN glob syntax
PREFIX_FORBIDDEN = frozenset("{}*?[]\\")


def valid_workflow_id(workflow_id: str) -> bool:
    return WORKFLOW_ID_RE.fullmatch(workflow_id) is not None


def new_run_id(workflow_id: str) -> str:
    return f"{workflow_id}-{uuid.uuid4().hex}"


def workflow_of(run_id: str) -> str | None:
    """The workflow id inside a run id, or None when the string is not a run id."""
    match = _RUN_ID_RE.fullmatch(run_id or "")
    return match.group("workflow") if match else None


@dataclass(frozen=True)
class Keys:
    prefix: str = "testrun"

    def tag(self, workflow_id: str) -> str:
        return f"{self.prefix}:{{{workflow_id}}}"

    def slot(self, workflow_id: str) -> str:
        return f"{self.tag(workflow_id)}:slot"

    def pending(self, workflow_id: str) -> str:
        """The workflow's pending run's id (on_conflict=queue), with a TTL: the one run that
        takes the slot when it is freed (lib.lua promote() builds the same name from the
        slot's)."""
        return f"{self.tag(workflow_id)}:waiting"

    def run_prefix(self, workflow_id: str) -> str:
        return f"{self.tag(workflow_id)}:run:"

    def run(self, workflow_id: str, run_id: str) -> str:
        return self.run_prefix(workflow_id) + run_id

    def logs(self, workflow_id: str, run_id: str) -> str:
        return f"{self.tag(workflow_id)}:logs:{run_id}"

    def events_prefix(self, workflow_id: str) -> str:
        return f"{self.tag(workflow_id)}:events:"

    def events(self, workflow_id: str, run_id: str) -> str:
        """The run's event stream (a Redis Stream): status changes and log lines, for SSE."""
        return self.events_prefix(workflow_id) + run_id

    def index(self, workflow_id: str) -> str:
        """Sorted set of the workflow's run ids by creation time, for listing newest first."""
        return f"{self.tag(workflow_id)}:runs"

    def idempotency(self, workflow_id: str, key: str) -> str:
        return f"{self.tag(workflow_id)}:idem:{key}"

    def outbox(self, workflow_id: str) -> str:
        """The workflow's endings not yet handed to the webhooks (a sorted set, run id → when
        it ended), written by every script that ends a run (lib.lua's note_ending)."""
        return f"{self.tag(workflow_id)}:ended"

    def webhooks_due(self) -> str:
        """Webhook deliveries by when they are due (ms): a retry, or a claim that lapses. The
        hash tag `{_webhooks}` can be no workflow's (ids start alphanumeric)."""
        return f"{self.prefix}:{{_webhooks}}:due"

    def webhook_prefix(self) -> str:
        return f"{self.prefix}:{{_webhooks}}:delivery:"

    def webhook(self, webhook_id: str) -> str:
        """One delivery of one run's ending to one target (a hash; as long as the run)."""
        return self.webhook_prefix() + webhook_id

    def rate_limit_prefix(self) -> str:
        """Trigger rate-limit counters (per caller, not per workflow: no hash tag)."""
        return f"{self.prefix}:ratelimit"

    def workers(self, queue: str) -> str:
        """Workers consuming `queue`: a sorted set of hostname → end of its advertisement (ms,
        Redis' clock). The hash tag `{_workers}` can be no workflow's (ids start alphanumeric)."""
        return f"{self.prefix}:{{_workers}}:queue:{queue}"

    def worker_info_prefix(self) -> str:
        """A worker's details (a hash, with the advertisement's TTL) are this + hostname."""
        return f"{self.prefix}:{{_workers}}:info:"

    def scan_pattern(self, kind: str) -> str:
        """For the operator CLI only (SCAN); no request path scans. `*` also matches `}` and
        `:`, so an idempotency key may look alike: filter with `workflow_in`."""
        return f"{self.prefix}:{{*}}:{kind}"

    def workflow_in(self, key: str, kind: str) -> str | None:
        """The workflow id of a key of this `kind` (`slot`, `runs`), or None for any other key."""
        head, tail = f"{self.prefix}:{{", f"}}:{kind}"
        if not (key.startswith(head) and key.endswith(tail)):
            return None
        workflow_id = key[len(head):-len(tail)]
        return workflow_id if valid_workflow_id(workflow_id) else None
