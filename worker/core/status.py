"""The vocabulary of a run, defined once: its status, why it failed, why its slot was freed,
what a trigger does when the workflow is busy, and where and how its ending was delivered.

The Lua scripts never spell these strings themselves: `worker/core/lua/text.py` turns every enum
here into a Lua table when the scripts are loaded (`STATUS.QUEUED`, `ERROR.TIMEOUT`,
`REASON.REPLACED`, `TERMINAL[...]`), so Python and Lua cannot drift apart.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    #: `on_conflict=queue` (or a replace of a running run): waits for the slot, with no task
    #: message out; promoted to `queued` in the same step that frees the slot
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    #: never started: its queue time ran out, or it lost its slot while queued
    EXPIRED = "expired"
    #: started, then its lease ran out with no outcome recorded (the worker stopped answering)
    LOST = "lost"
    #: a pending run a newer `on_conflict=queue` trigger took the place of (`superseded_by`)
    SUPERSEDED = "superseded"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


#: A terminal status never changes; a run in one holds its slot only until it is released.
TERMINAL = frozenset(RunStatus) - {RunStatus.PENDING, RunStatus.QUEUED,
                                   RunStatus.RUNNING}


class ErrorType(StrEnum):
    ERROR = "error"                      # the workflow raised
    TIMEOUT = "timeout"                  # soft or hard time limit
    WORKER_LOST = "worker_lost"          # the pool child or the worker died mid-run
    ENQUEUE_FAILED = "enqueue_failed"    # the broker refused or could not be reached
    CANCELLED = "cancelled"              # a person (or a replace, or an operator) cancelled it
    #: still running when its worker's drain time (TEST_RUN_SHUTDOWN_GRACE) ran out: a deploy
    WORKER_SHUTDOWN = "worker_shutdown"
    QUEUE_TIMEOUT = "queue_timeout"      # waited longer than TEST_RUN_QUEUE_TIMEOUT
    PENDING_TIMEOUT = "pending_timeout"  # pending longer than TEST_RUN_PENDING_TIMEOUT
    SUPERSEDED = "superseded"            # a newer queue trigger took its place while pending
    HEARTBEAT_LOST = "heartbeat_lost"    # running, and its worker stopped renewing the lease
    WORKFLOW_NOT_FOUND = "workflow_not_found"  # the worker does not know the workflow
    INVALID_RESULT = "invalid_result"    # the workflow returned something that is not JSON


class ReleaseReason(StrEnum):
    """Why a slot was freed; recorded on the run that held it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    WORKER_LOST = "worker_lost"
    PUBLISH_FAILED = "publish_failed"
    RECLAIMED = "reclaimed"          # a new trigger found the holder already terminal
    REPLACED = "replaced"            # a trigger with on_conflict=replace took over
    LEASE_EXPIRED = "lease_expired"  # nobody renewed it: found free when the run was read
    FORCED = "forced"                # an operator released it by hand
    WORKER_SHUTDOWN = "worker_shutdown"  # its worker stopped it at the end of its drain time


class ConflictPolicy(StrEnum):
    """`?on_conflict=`: what a trigger does while another run of the workflow holds the slot."""

    REJECT = "reject"    # 409 naming the holder
    #: cancel the holder and take the slot, in one atomic step (a running holder's slot
    #: passes once its body is gone: the replacing run is pending until then)
    REPLACE = "replace"
    #: become the workflow's one pending run (superseding an older one), promoted when the
    #: slot is freed
    QUEUE = "queue"
    #: the holder (or the pending run) with the same input and workflow version: that run;
    #: else as reject
    JOIN = "join"


class WebhookTarget(StrEnum):
    """Where a run's ending is delivered (a delivery's `target`)."""

    WEBHOOK_URL = "webhook_url"    # the operator's WEBHOOK_URL: every run
    CALLBACK_URL = "callback_url"  # the trigger's own callback_url


class DeliveryOutcome(StrEnum):
    """How one webhook attempt ended (a delivery's `outcome`)."""

    DELIVERED = "delivered"  # a 2xx: done
    RETRYING = "retrying"    # a timeout, a connection error, a 5xx or 429: tried again later
    GAVE_UP = "gave_up"      # a 3xx or 4xx (not 429), or the last attempt failed: done
    REFUSED = "refused"      # the callback_url now resolves where it may not go: done


class EventKind(StrEnum):
    """What an entry of a run's event stream records (GET /api/test-runs/<id>/events)."""

    STATUS = "status"  # the run's status changed (written inside the script that changed it)
    LOG = "log"        # the workflow body logged a line


#: The release reason that goes with each terminal status written by an outcome.
STATUS_RELEASE_REASON = {
    RunStatus.SUCCEEDED: ReleaseReason.SUCCEEDED,
    RunStatus.FAILED: ReleaseReason.FAILED,
    RunStatus.TIMED_OUT: ReleaseReason.TIMED_OUT,
    RunStatus.CANCELLED: ReleaseReason.CANCELLED,
    RunStatus.EXPIRED: ReleaseReason.EXPIRED,
    RunStatus.LOST: ReleaseReason.LEASE_EXPIRED,
}

#: Terminal statuses written *over* a running run (a cancel, a replace, a lapsed lease): its
#: process must be stopped. A run that ended by itself (succeeded, ...) has nothing to stop.
ENDED_OVER_ITS_HEAD = frozenset({RunStatus.CANCELLED, RunStatus.LOST, RunStatus.EXPIRED})
