"""The one place every lifecycle event of a run passes through.

Logs (and later metrics) hang off `emit`; code elsewhere never logs lifecycle events itself.
Listeners must not break the caller: an exception in one is logged and swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum
from typing import Any

logger = logging.getLogger("worker.lifecycle")


class Event(str, Enum):
    ADMITTED = "admitted"
    CONFLICT = "conflict"
    RECLAIMED = "reclaimed"
    REPLACED = "replaced"
    ENQUEUE_FAILED = "enqueue_failed"
    STARTED = "started"
    REFUSED = "refused"          # a delivered message that must not execute
    FINISHED = "finished"
    RELEASED = "released"
    CANCELLED = "cancelled"
    STOPPED = "stopped"          # the heartbeat killed a run's process (ended over its head)
    FORCED = "forced"


Listener = Callable[[Event, dict[str, Any]], None]
_listeners: list[Listener] = []


def subscribe(listener: Listener) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def emit(event: Event, **fields: Any) -> None:
    if logger.isEnabledFor(logging.INFO):
        details = " ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, ""))
        logger.info("test run %s %s", event.value, details,
                    extra={"event": event.value, **fields})
    for listener in list(_listeners):
        try:
            listener(event, fields)
        except Exception:  # noqa: BLE001 - a listener never breaks the lifecycle
            logger.exception("lifecycle listener %r failed on %s", listener, event.value)
