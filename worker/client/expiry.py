"""The queue timeout travels as Celery's `expires` header only, never as a broker-side TTL.

Celery turns `expires=` into two things: the `expires` header (a worker that pulls an expired
message revokes it: `task_revoked(expired=True)`, which records the run `expired` and frees its
slot at once) and the AMQP `expiration` property, a per-message TTL. RabbitMQ honours that TTL
by dropping the message silently — no worker ever sees it, so no signal fires, and the slot
waits for its queued lease (queue timeout + grace). Dropping the property keeps one behaviour
on every broker: the worker revokes it, and the lease stays the backstop when none does.
(kombu's Redis transport ignores the property anyway.)
"""

from __future__ import annotations

from typing import Any

from celery.signals import before_task_publish

from ..core.celery_app import TASK_NAME

_connected = False


def drop_broker_ttl(sender: Any = None, properties: dict[str, Any] | None = None,
                    **_: Any) -> None:
    """`before_task_publish` runs before Celery builds the publish call from `properties`,
    so removing the key here keeps it off the message."""
    if sender == TASK_NAME and properties is not None:
        properties.pop("expiration", None)


def connect() -> None:
    global _connected
    if not _connected:
        before_task_publish.connect(drop_broker_ttl, weak=False)
        _connected = True
