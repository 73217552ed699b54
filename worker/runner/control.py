"""The worker's end of stopping a run's process: the `stop_test_run` remote-control command.

Cancel, replace and `testruns release` record the run's end in Redis first-hand (the source of
truth: the start check and the heartbeat enforce it even if no message ever arrives), then send
this command (worker/client/stop.py); it only makes the kill immediate. Unlike Celery's own
`revoke(terminate=True)`, it kills a process **only while it still executes that run's body**:
the process the start check recorded (worker and pid), never another with the same task id (a
duplicate delivery, active for the milliseconds until its start check refuses it: killed for
the run, its death would have freed the slot while the body ran on), never one that moved on
to another task (revoke-terminate can hit those).

The kill happens on a short-lived thread, not in the event loop (the record is read from
Redis first). A body whose start check ran before the cancel was recorded may not be active in
the main process's view yet (the child's acknowledgement is still on its way): the thread waits
for it, up to ACCEPT_WITHIN_S; past that the heartbeat stops it within an interval.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from celery.worker import state as worker_state
from celery.worker.control import control_command, ok

from ..core.keys import workflow_of
from ..core.lifecycle import lifecycle
from . import confirm

logger = logging.getLogger(__name__)

#: how long a stop waits for the recorded body to be active here
ACCEPT_WITHIN_S = 2.0
POLL_S = 0.01


# Celery names the command after the function: STOP_COMMAND
@control_command(args=[("run_id", str)], signature="<run_id>")
def stop_test_run(state: Any, run_id: str, **_: Any) -> dict[str, str]:
    """Kill the pool process executing this test run's body, if it executes here."""
    consumer = state.consumer
    threading.Thread(target=stop_body, args=(consumer.app, consumer.pool, consumer.hostname,
                                             run_id),
                     daemon=True, name=f"testrun-stop-{run_id[-8:]}").start()
    return ok(f"stopping {run_id} if its body executes here")


def stop_body(app: Any, pool: Any, hostname: str, run_id: str,
              within: float = ACCEPT_WITHIN_S) -> int | None:
    """Kill the run's body if this worker runs it; the pid killed, else None."""
    try:
        body = app.store.body_of(run_id)
    except Exception as exc:  # noqa: BLE001 - the heartbeat (pid-checked) stops it then
        logger.warning("stop of test run %s: its record could not be read (%s); its "
                       "worker's heartbeat will stop it", run_id, exc)
        return None
    if body is None or body[0] != hostname:
        return None  # not started, or started on another worker
    pid = body[1]
    deadline = time.monotonic() + within
    while not executing(run_id, hostname, pid):
        if time.monotonic() >= deadline:
            return None  # gone already, or not yet seen: the heartbeat stops it
        time.sleep(POLL_S)  # the main process's view of the pool: nothing to wait on
    # its end is a cancel: the kill surfaces as Terminated/WorkerLostError (stops.py)
    app.stops.requested(run_id)
    lifecycle.stopped(run_id, workflow_of(run_id) or "", pid, "cancelled by request")
    pool.terminate_job(pid, signal.SIGKILL)
    confirm.when_gone(app.store, run_id, pid, hostname)
    return pid


def executing(run_id: str, hostname: str, pid: int) -> bool:
    """That very process runs that run here, as the main process sees its pool."""
    for _ in range(3):
        try:
            return any(r.id == run_id and r.worker_pid == pid and r.time_start
                       and r.hostname == hostname for r in list(worker_state.active_requests))
        except RuntimeError:  # the set changed while copied; look again
            continue
    return False


def register() -> None:
    """Nothing to do: importing this module registered the command with Celery's global
    Panel. Called by create_celery so the import is visibly needed, not an accident."""
