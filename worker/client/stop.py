"""Sending the stop of a run's process (the worker's end: worker/runner/control.py).

The send **never blocks a request**: kombu publishes control messages with `retry=True` and no
retry policy, so with the broker gone `revoke()` waited until it came back (measured: no
answer in 15 s). Here the publish retries once, immediately, and gives up: the run's record
already says it ended, and its worker's heartbeat stops it within an interval.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from kombu import Producer

from ..core.celery_app import STOP_COMMAND

logger = logging.getLogger(__name__)


class _BoundedProducer(Producer):
    """A producer whose every publish retries as told, whatever its caller asks for."""

    def __init__(self, channel: Any, retry_policy: dict[str, Any]) -> None:
        super().__init__(channel, auto_declare=False)
        self._retry_policy = retry_policy

    def publish(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["retry_policy"] = self._retry_policy
        return super().publish(*args, **kwargs)


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
