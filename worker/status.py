"""The small fixed vocabularies of a run: its status, why it failed, why its slot was freed."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
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

    @property
    def terminal(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)



class ErrorType(str, Enum):
    ERROR = "error"                      # the workflow raised
    TIMEOUT = "timeout"                  # soft or hard time limit
    WORKER_LOST = "worker_lost"          # the pool child or the worker died mid-run
    ENQUEUE_FAILED = "enqueue_failed"    # the broker refused or could not be reached
    CANCELLED = "cancelled"              # a person cancelled it
    QUEUE_TIMEOUT = "queue_timeout"      # waited longer than TEST_RUN_QUEUE_TIMEOUT
    HEARTBEAT_LOST = "heartbeat_lost"    # running, and its worker stopped renewing the lease
    WORKFLOW_NOT_FOUND = "workflow_not_found"  # the worker does not know the workflow
    INVALID_RESULT = "invalid_result"    # the workflow returned something that is not JSON


class ReleaseReason(str, Enum):
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


#: The release reason that goes with each terminal status written by an outcome.
STATUS_RELEASE_REASON = {
    RunStatus.SUCCEEDED: ReleaseReason.SUCCEEDED,
    RunStatus.FAILED: ReleaseReason.FAILED,
    RunStatus.TIMED_OUT: ReleaseReason.TIMED_OUT,
    RunStatus.CANCELLED: ReleaseReason.CANCELLED,
    RunStatus.EXPIRED: ReleaseReason.EXPIRED,
    RunStatus.LOST: ReleaseReason.LEASE_EXPIRED,
}
