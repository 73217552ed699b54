"""The worker's consumer on RabbitMQ: Celery's own, less the native-delayed-delivery step, plus
an exact prefetch after a lost broker connection — so a busy worker reserves no waiting run,
even then.

**No delayed delivery.** Celery adds that step whenever a queue is a quorum queue: at every
consumer (re)start it connects to every URL of the broker list, declares 28 `celery_delayed_*`
queues and their exchanges, and retries a node that is down with growing sleeps (measured: 17 s
with one of three nodes SIGKILLed) — all before the consumer takes its next message. It serves
only ETA and countdown tasks, which test runs never are (a run starts now or expires).

**After a reconnect.** Runs ack late on RabbitMQ, so a worker's prefetch (one per pool
process) is used up by the runs it executes. When its broker connection drops (a node dies, a
rolling restart) those runs keep executing, but their deliveries went back to the queue with the
connection (the start check refuses them when they come round): the new connection's prefetch
no longer counts them, and with all of it the worker would reserve a waiting run for each run it
still executes. Celery's own remedy (a lower prefetch, raised again at each ack) is skipped for
quorum queues, whose per-consumer prefetch cannot change on a live consumer, and is not exact
for classic ones. So this step grants the new connection only the processes those runs leave
free, and grants each one back as its run ends: on a channel-wide (global) prefetch by raising
it; on a per-consumer one by adding a consumer whose prefetch is what was freed. With every
process busy nothing is consumed until one frees.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from celery import bootsteps
from celery.worker import state
from celery.worker.consumer import Consumer

from ..core.celery_app import TASK_NAME

logger = logging.getLogger(__name__)

DELAYED_DELIVERY_STEP = "celery.worker.consumer.delayed_delivery:DelayedDelivery"
#: how often, after a reconnect, the worker looks whether runs from before it have ended
POLL_S = 0.25


class TestRunConsumer(Consumer):
    """Celery's consumer without DelayedDelivery (`worker_consumer` names this class)."""

    __test__ = False  # not a pytest class

    class Blueprint(Consumer.Blueprint):
        default_steps = [step for step in Consumer.Blueprint.default_steps
                         if step != DELAYED_DELIVERY_STEP]


#: the `worker_consumer` setting's value
PATH = f"{__name__}:{TestRunConsumer.__name__}"


class PrefetchAfterReconnect(bootsteps.StartStopStep):
    """Started after Celery's task consumer, before its event loop consumes: a (re)start that
    finds runs unfinished is a reconnect mid-run (on the first start there are none)."""

    requires = ("celery.worker.consumer.tasks:Tasks",)
    label = "TestRunPrefetch"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._orphans: weakref.WeakSet[Any] = weakref.WeakSet()
        self._queues: list[Any] = []
        self._extra: list[Any] = []  # the consumers added as runs ended (per-consumer prefetch)
        self._granted = 0
        self._poll: Any = None

    def start(self, c: Any) -> None:
        if c.task_consumer is None or c.connection.transport.driver_type != "amqp":
            return  # Redis takes a message only when a process is free anyway
        self._orphans = weakref.WeakSet(_requests(state.reserved_requests))
        if not self._orphans:
            return
        self._queues, self._granted = list(c.task_consumer.queues), 0
        target = self._target(c)
        logger.warning("broker connection lost while %d run(s) executed: they go on; until they "
                       "end this worker takes at most %d run(s) at once", len(self._orphans),
                       target)
        # the event loop consumes right after this: with the prefetch set here, or not at all
        if c.qos_global:
            c.qos.value = max(1, target)  # 0 would mean no limit; nothing consumes then anyway
            c.qos.set(c.qos.value)
        else:
            c.task_consumer.qos(prefetch_count=max(1, target), apply_global=False)
        if target:
            self._granted = target
        else:
            for queue in self._queues:
                c.task_consumer.cancel_by_queue(queue.name)  # not consuming yet: only forgets it
        self._poll = c.timer.call_repeatedly(POLL_S, self._grant, (c,))

    def _target(self, c: Any) -> int:
        """The prefetch this worker may use now: its whole one, less the old runs' share."""
        old = sum(1 for r in _requests(self._orphans) if r in state.reserved_requests)
        return max(0, c.max_prefetch_count - old * c.prefetch_multiplier)

    def _grant(self, c: Any) -> None:
        target = self._target(c)
        if target > self._granted:
            try:
                self._consume(c, target)
            except Exception:  # noqa: BLE001 - the connection broke again: the restart re-decides
                logger.exception("could not take up the prefetch freed by an ended run")
                return
            self._granted = target
        if target >= c.max_prefetch_count:
            logger.info("the runs from before the reconnect have ended: full prefetch again")
            self._cancel_poll()

    def _consume(self, c: Any, target: int) -> None:
        consumer = c.task_consumer
        if c.qos_global:
            c.qos.value = target
            c.qos.update()
        elif self._granted:
            # a live consumer's prefetch is fixed: the freed share goes to one more consumer
            consumer.channel.basic_qos(0, target - self._granted, False)
            extra = c.app.amqp.TaskConsumer(consumer.channel, queues=self._queues,
                                            on_decode_error=c.on_decode_error)
            extra.on_message = consumer.on_message
            extra.consume()
            self._extra.append(extra)
            return
        else:
            consumer.channel.basic_qos(0, target, False)
        if not self._granted:  # held until now: start the task consumer itself
            for queue in self._queues:
                consumer.add_queue(queue)
            consumer.consume()

    def _cancel_poll(self) -> None:
        poll, self._poll = self._poll, None
        if poll is not None:
            poll.cancel()

    def stop(self, c: Any) -> None:
        """Before Celery cancels its task consumer (a warm shutdown takes no new run)."""
        self._cancel_poll()
        extra, self._extra = self._extra, []
        for consumer in extra:
            try:
                consumer.cancel()
            except Exception:  # noqa: BLE001 - the channel is gone: so is the consumer
                logger.debug("cancelling an added consumer failed", exc_info=True)

    shutdown = stop


def _requests(requests: Any) -> list[Any]:
    """This worker's test-run requests in a WeakSet (copied; it changes as runs end)."""
    for _ in range(3):
        try:
            return [r for r in list(requests) if r.name == TASK_NAME]
        except RuntimeError:  # the set changed while copied; try again
            continue
    return []
