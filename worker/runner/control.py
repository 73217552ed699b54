"""Stopping a running test run's process: a remote-control command, and sending it.

Cancel, replace and `testruns release` record the run's end in Redis first-hand (the source of
truth: the start check and the heartbeat enforce it even if no message ever arrives); this only
makes the kill immediate. Two things Celery's own `revoke(terminate=True)` does not give:

- the worker kills a process **only while it still executes that run** (revoke-terminate can
  hit a process that already moved on to another task), from the worker's main process, where
  the pool's view of which process runs what is kept;
- the send **never blocks a request**: kombu publishes control messages with `retry=True` and
  no retry policy, so with the broker gone `revoke()` waited until it came back (measured: no
  answer in 15 s). Here the publish retries once, immediately, and gives up.
"""

from __future__ import annotations

import logging
import signal
from typing import Any

from celery import Celery
from celery.worker import state as worker_state
from celery.worker.control import control_command, ok
from kombu import Producer

from ..core.keys import workflow_of
from ..core.lifecycle import lifecycle

logger = logging.getLogger(__name__)

STOP_COMMAND = "stop_test_run"

#: runs this worker stopped on request, for the signal handlers to record as cancelled (the
#: kill surfaces as WorkerLostError, which would otherwise read `worker_lost`)
stopped_on_request: set[str] = set()


@control_command(args=[("run_id", str)], signature="<run_id>")
def stop_test_run(state: Any, run_id: str, **_: Any) -> dict[str, str]:
    """Kill the pool process executing this test run, if one here still executes it."""
    for request in list(worker_state.active_requests):
        pid = request.worker_pid
        if request.id != run_id or not pid or not request.time_start:
            continue
        stopped_on_request.add(run_id)
        lifecycle.stopped(run_id, workflow_of(run_id) or "", pid, "cancelled by request")
        state.consumer.pool.terminate_job(pid, signal.SIGKILL)
        return ok(f"stopped {run_id} (pid {pid})")
    return ok(f"{run_id} is not executing here")


class _BoundedProducer(Producer):
    """A producer whose every publish retries as told, whatever its caller asks for."""

    def __init__(self, channel: Any, retry_policy: dict[str, Any]) -> None:
        super().__init__(channel, auto_declare=False)
        self._retry_policy = retry_policy

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["retry_policy"] = self._retry_policy
        return super().publish(*args, **kwargs)


def register() -> None:
    """Nothing to do: importing this module registered the command with Celery's global
    Panel. Called by create_celery so the import is visibly needed, not an accident."""


def send_stop(app: Celery, run_id: str, *, timeout: float) -> bool:
    """Broadcast `stop_test_run` to every worker; False (logged) if the broker could not take
    it within about `timeout` seconds. Never raises."""
    policy = {"max_retries": 1, "interval_start": 0, "interval_step": 0, "interval_max": 0}
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=timeout)
            channel = conn.default_channel
            mailbox = app.control.mailbox(conn)
            # Mailbox._publish builds the pidbox message every worker understands; it is the
            # only way to hand it a producer (kombu's public broadcast has no retry policy)
            mailbox._publish(STOP_COMMAND, {"run_id": run_id}, channel=channel,
                             producer=_BoundedProducer(channel, policy))
        return True
    except Exception as exc:  # noqa: BLE001 - the record holds; the heartbeat enforces it
        logger.warning("stop of test run %s not sent (%s: %s); its record already says it "
                       "ended, and its worker's heartbeat will stop it", run_id,
                       type(exc).__name__, exc)
        return False
