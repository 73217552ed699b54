"""The worker's end of stopping a run's process: the `stop_test_run` remote-control command.

Cancel, replace and `testruns release` record the run's end in Redis first-hand (the source of
truth: the start check and the heartbeat enforce it even if no message ever arrives), then send
this command (worker/client/stop.py); it only makes the kill immediate. Unlike Celery's own
`revoke(terminate=True)`, it kills a process **only while it still executes that run**
(revoke-terminate can hit a process that already moved on to another task), from the worker's
main process, where the pool's view of which process runs what is kept.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from celery.worker import state as worker_state
from celery.worker.control import control_command, ok

from ..core.keys import workflow_of
from ..core.lifecycle import lifecycle
from . import confirm

logger = logging.getLogger(__name__)

# Celery names the command after the function: STOP_COMMAND
@control_command(args=[("run_id", str)], signature="<run_id>")
def stop_test_run(state: Any, run_id: str, **_: Any) -> dict[str, str]:
    """Kill the pool process executing this test run, if one here still executes it."""
    for request in list(worker_state.active_requests):
        pid = request.worker_pid
        if request.id != run_id or not pid or not request.time_start:
            continue
        # its end is a cancel: the kill surfaces as WorkerLostError (worker/runner/stops.py)
        state.consumer.app.stops.requested(run_id)
        lifecycle.stopped(run_id, workflow_of(run_id) or "", pid, "cancelled by request")
        state.consumer.pool.terminate_job(pid, signal.SIGKILL)
        confirm.when_gone(state.consumer.app.store, run_id, pid, request.hostname)
        return ok(f"stopped {run_id} (pid {pid})")
    return ok(f"{run_id} is not executing here")


def register() -> None:
    """Nothing to do: importing this module registered the command with Celery's global
    Panel. Called by create_celery so the import is visibly needed, not an accident."""


