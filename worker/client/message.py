"""The Celery task message of a run, as kombu's Redis transport would push it, built in Python.

When the broker is the tracking Redis itself (same server, same database), the admit script
pushes the run's message onto the queue's list in the same atomic step that takes the slot
(the *fused* admission: one round trip, and no window where the slot is taken but the message
is not out). The message must then be exactly what `send_task` would have pushed, or a worker
would read it differently. So it is built with Celery's and kombu's own code:

- Celery's `app.amqp.create_task_message` (protocol 2: headers, properties, body), called with
  the arguments `publish` below gives `send_task`; the parts that do not depend on the run are
  taken from it once per process, the rest (ids, `argsrepr`, `expires`) is set per run as
  Celery sets it;
- kombu's producer and Redis channel steps: the JSON serializer (`kombu.serialization`), the
  envelope of `Channel.prepare_message`, the base64 body encoding and `delivery_info` /
  `delivery_tag` of `Channel._inplace_augment_message`, the priority list name of
  `Channel._q_for_pri`, and kombu's JSON for what `Channel._put` LPUSHes.

The other path is kombu's own publish of the run, after the admit script (RabbitMQ, a broker
elsewhere, a callback_url to attach first): worker/core/publish.py. On RabbitMQ the web
publishes with confirms, so it returns once the broker has the message (a quorum queue: a
majority of its nodes).

tests/integration/test_message_contract.py captures what kombu itself pushes for the same run
and compares field by field, so a Celery or kombu upgrade that changes the format fails there.
"""

from __future__ import annotations

import re
from bisect import bisect
from collections.abc import Callable
from datetime import datetime, timedelta
from json.encoder import encode_basestring_ascii
from typing import Any
from uuid import uuid4

from celery import Celery
from kombu.entity import maybe_delivery_mode
from kombu.serialization import dumps as serialize
from kombu.transport.redis import Channel as RedisChannel
from kombu.transport.virtual.base import Base64
from kombu.utils.json import dumps as kombu_json
from redis.connection import parse_url

from ..core.celery_app import TASK_NAME
from ..core.lua import Message
from ..core.settings import REDIS_SCHEMES, Settings
from ..core.status import ConflictPolicy

#: what the message of run "x" carries in place of the run id, to find the per-run parts
_PLACEHOLDER = "00000000-placeholder-run-id-00000000"
#: transport options that would change the list name or the envelope: with any of them set, the
#: fused path is off (the two-step path lets kombu apply them)
_UNSUPPORTED_TRANSPORT_OPTIONS = ("global_keyprefix", "sep", "priority_steps",
                                  "queue_order_strategy")
_BASE64 = Base64()


def _server(url: str) -> tuple[str, str, int, int] | None:
    """(scheme kind, host or socket path, port, db) of a Redis URL; None for anything else."""
    scheme = url.split("://", 1)[0].lower()
    if scheme not in REDIS_SCHEMES:
        return None
    try:
        parts = parse_url(url)
    except ValueError:
        return None
    if scheme == "unix":
        return ("unix", str(parts.get("path", "")), 0, int(parts.get("db") or 0))
    return (scheme, str(parts.get("host", "localhost")).lower(), int(parts.get("port") or 6379),
            int(parts.get("db") or 0))


def fused(settings: Settings, transport_options: dict[str, Any] | None = None) -> bool:
    """True when the admit script may push the message itself: the broker is the tracking Redis
    (same scheme, host or socket, port and database, as written in the URLs), nothing in the
    transport options renames kombu's lists, and TEST_RUN_FUSED_ADMISSION is on."""
    if not settings.fused_admission:
        return False
    if any(option in (transport_options or {}) for option in _UNSUPPORTED_TRANSPORT_OPTIONS):
        return False
    broker = _server(settings.broker_url)
    return broker is not None and broker == _server(settings.tracking_url)


class MessageBuilder:
    """Builds one run's message; create it once per process, after the app is configured.

    Creating it runs Celery's and kombu's code once, for a placeholder run, into a template of
    the JSON text; `build` then only fills in the per-run values (a few microseconds, where a
    `send_task` spends hundreds). Create it in the process that uses it: the `origin` header
    names the process (`gen<pid>@<host>`), as Celery's does."""

    def __init__(self, app: Celery, settings: Settings, *, priority: int = 0) -> None:
        self.app = app
        self._expires = timedelta(seconds=settings.queue_timeout)
        # Celery's own message for a placeholder run, called as send_task calls it for
        # publish()'s arguments below (protocol 2: headers, properties, body)
        headers, properties, body, _ = app.amqp.create_task_message(
            _PLACEHOLDER, TASK_NAME, [_PLACEHOLDER], None, None, None, None, None,
            settings.queue_timeout, 0, None, None, None, _PLACEHOLDER, settings.time_limit,
            settings.soft_time_limit, False, None, None, None, None, ignore_result=True)
        self._argsrepr: str = headers["argsrepr"]
        # kombu's serializer (what Producer._prepare does with the body)
        content_type, content_encoding, body_text = serialize(body, serializer="json")
        self._body = body_text.split(_quoted(_PLACEHOLDER))
        if len(self._body) != 2:
            raise ValueError(f"unexpected task body {body_text!r}")
        # Channel._q_for_pri: the list a message of this priority goes to
        steps = RedisChannel.priority_steps
        step = steps[bisect(steps, priority) - 1]
        self.queue_key = f"{settings.queue}{RedisChannel.sep}{step}" if step else settings.queue
        # Producer.publish (delivery_mode of the queue's exchange; no `expiration`: publish.py
        # keeps the queue timeout off the broker, as the `expires` header only),
        # Channel.prepare_message (the envelope, priority),
        # Channel._inplace_augment_message (base64 body, delivery_info, delivery_tag)
        exchange = app.amqp.queues[settings.queue].exchange
        headers.update(id=_slot("id"), root_id=_slot("id"), argsrepr=_slot("argsrepr"),
                       expires=_slot("expires"))
        envelope = {
            "body": _slot("body"),
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": headers,
            "properties": {
                "correlation_id": _slot("id"),
                "reply_to": _slot("reply_to"),
                "delivery_mode": maybe_delivery_mode(exchange.delivery_mode),
                "delivery_info": {"exchange": "", "routing_key": settings.queue},
                "priority": priority,
                "body_encoding": "base64",
                "delivery_tag": _slot("delivery_tag"),
            },
        }
        del properties  # correlation_id and reply_to: per run, per thread (filled in above)
        # kombu's JSON (what Channel._put LPUSHes), cut at the per-run values
        self._parts = _SLOT_RE.split(kombu_json(envelope))

    def build(self, run_id: str, *, later_s: float = 0.0) -> str:
        """The JSON text `Channel._put` would LPUSH for `send_task(TASK_NAME, args=[run_id],
        task_id=run_id, expires=queue timeout, time limits, ignore_result=True)`. `later_s`:
        a pending run's message, pushed when it is promoted (at most that many seconds from
        now), expires that much later; its start check counts the queue timeout from the
        promotion itself."""
        app = self.app
        body = self._body[0] + _quoted(run_id) + self._body[1]
        values = {
            "id": run_id,
            "argsrepr": self._argsrepr.replace(_PLACEHOLDER, run_id),
            # as_task_v2: now in the app's timezone + expires, ISO 8601
            "expires": (datetime.now(app.timezone) + self._expires
                        + timedelta(seconds=later_s)).isoformat(),
            "body": _BASE64.encode(body),
            "reply_to": app.thread_oid,  # send_task's reply_to: the app's id in this thread
            "delivery_tag": str(uuid4()),
        }
        parts = self._parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(_quoted(values[parts[i]]))
            out.append(parts[i + 1])
        return "".join(out)


class FusedMessages:
    """Each new run's message for the fused admission, from a builder made on first use, once
    per process (a run that may become pending: a message valid for its pending time too)."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self._app, self._settings = app, settings
        self._builder: MessageBuilder | None = None

    def __call__(self, run_id: str, policy: ConflictPolicy = ConflictPolicy.REJECT, *,
                 lazy: bool = False) -> Message:
        """(the broker's list, the message); `lazy` (a reject that expects a 409): a function
        that makes it, called only if the admit script asks for it (lua/admission.py)."""
        if lazy and policy is ConflictPolicy.REJECT:
            return lambda: self.now(run_id, policy)
        return self.now(run_id, policy)

    def now(self, run_id: str, policy: ConflictPolicy = ConflictPolicy.REJECT) -> tuple[str, str]:
        builder = self._builder
        if builder is None:
            builder = self._builder = MessageBuilder(self._app, self._settings)
        later = (self._settings.pending_timeout
                 if policy in (ConflictPolicy.QUEUE, ConflictPolicy.REPLACE) else 0.0)
        return builder.queue_key, builder.build(run_id, later_s=later)


def _slot(name: str) -> str:
    """A per-run value's place in the template."""
    return f"<<{name}>>"


_SLOT_RE = re.compile(r'"<<(\w+)>>"')


#: a string as JSON text, as json.dumps writes it (kombu's JSON is the standard library's for
#: plain values)
_quoted: Callable[[str], str] = encode_basestring_ascii
