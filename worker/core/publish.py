"""Publishing a run's task message through kombu (the two-step path), from either side.

The web publishes a run right after admit.lua took its slot when the message could not go out
in that same step (RabbitMQ, a broker on another Redis, a callback_url to attach first). And
since the slot's release promotes the workflow's pending run in the releasing step
(lib.lua release()), whichever process freed the slot — the web (a cancel), a worker (an
outcome), the CLI (a release) — publishes the promoted run right after, when its message was
not stored for the fused push: `install()` makes the run store do so (`RunStore.publisher`).

The queue timeout travels as Celery's `expires` header only, never as a broker-side TTL:
Celery turns `expires=` into the `expires` header (a worker that pulls an expired message
revokes it: `task_revoked(expired=True)`, which records the run `expired` and frees its slot)
and the AMQP `expiration` property, a per-message TTL that RabbitMQ honours by dropping the
message silently — no worker ever sees it, no signal fires, and the slot waits for its queued
lease. `drop_broker_ttl` keeps the property off, so every broker behaves alike.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

from .celery_app import TASK_NAME, TestRunCelery
from .keys import workflow_of
from .lifecycle import lifecycle
from .settings import Settings
from .status import ErrorType, ReleaseReason, RunStatus
from .store import RunStore

logger = logging.getLogger(__name__)

#: what a run that could not be enqueued says about it (details: the log, by run id)
ENQUEUE_FAILED_ERROR = "could not enqueue: the broker did not accept the message"

_connected = False


def drop_broker_ttl(sender: Any = None, properties: dict[str, Any] | None = None,
                    **_: Any) -> None:
    """`before_task_publish` runs before Celery builds the publish call from `properties`,
    so removing the key here keeps it off the message."""
    if sender == TASK_NAME and properties is not None:
        properties.pop("expiration", None)


def connect() -> None:
    """Keep the queue timeout off the broker for every publish of this process."""
    global _connected
    if not _connected:
        before_task_publish.connect(drop_broker_ttl, weak=False)
        _connected = True


def publish(celery: Celery, settings: Settings, run_id: str) -> None:
    """Publish the run's task through kombu; raises whatever the publish raised."""
    connect()
    with celery.producer_or_acquire() as producer:
        try:
            celery.send_task(
                TASK_NAME, args=[run_id], task_id=run_id, queue=settings.queue,
                expires=settings.queue_timeout, time_limit=settings.time_limit,
                soft_time_limit=settings.soft_time_limit, ignore_result=True, retry=False,
                producer=producer, confirm_timeout=max(1.0, settings.io_timeout * 2),
            )
        except BaseException:
            # a confirm that comes late would answer for the next publish on this channel:
            # the next one starts on a fresh connection
            producer.connection.collect()
            raise


def unwind(store: RunStore, run_id: str, exc: BaseException) -> bool | None:
    """After a failed publish: mark the run failed and free its slot — only while it is still
    queued, since a publish can raise after the message reached the broker. True if this ended
    it; None if Redis is away too (the queued lease frees the slot then). The cause goes to the
    log with the run id; the record keeps a stable sentence, since driver text names hosts and
    ports and the record is kept for days."""
    lifecycle.enqueue_failed(run_id, workflow_of(run_id) or "", f"{type(exc).__name__}: {exc}")
    try:
        return store.finish(run_id, RunStatus.FAILED, error_type=ErrorType.ENQUEUE_FAILED,
                            error=ENQUEUE_FAILED_ERROR, reason=ReleaseReason.PUBLISH_FAILED,
                            only_if_queued=True)
    except Exception:  # noqa: BLE001 - Redis also away: the queued lease frees the slot
        logger.exception("could not release the slot of %s after a failed publish", run_id)
        return None


def publish_promoted(celery: TestRunCelery, run_id: str) -> None:
    """Publish a run promoted into a freed slot whose message was not stored (the two-step
    path), then clear its `publish_due` mark. A failed publish unwinds it as a trigger's
    would (failed, enqueue_failed, its slot freed); if even that fails, its queued lease ends
    it, and `testruns reconcile` publishes it again meanwhile."""
    store = celery.store
    try:
        publish(celery, celery.settings, run_id)
    except Exception as exc:  # noqa: BLE001 - the run is unwound, never left queued
        unwind(store, run_id, exc)
        return
    try:
        store.connection.redis.hdel(store.keys.run(workflow_of(run_id) or "", run_id),
                                    "publish_due")
    except Exception:  # noqa: BLE001 - only reconcile reads it: a second publish is refused
        logger.warning("could not clear publish_due of test run %s", run_id)


def install(celery: TestRunCelery) -> None:
    """Make the app's run store publish the runs its scripts promote."""
    celery.store.publisher = lambda run_id: publish_promoted(celery, run_id)
