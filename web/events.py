"""GET /api/test-runs/<run_id>/events: a run's events as Server-Sent Events.

```
id: 1733000000000-0        event: run      data: {the run as it is now}
id: 1733000000100-0        event: status   data: {"run_id", "status", "at", "terminal"}
id: 1733000000200-0        event: log      data: {"run_id", "line"}
id: 1733000001000-0        event: end      data: {the run as it ended}   … and the stream ends
```
A comment line (`: keep-alive`) is sent after TEST_RUN_STREAM_KEEPALIVE seconds without an
event; a client that went away is noticed when that write fails, and its thread is freed. A
client resumes with `Last-Event-ID` (worker/client/watch.py). Each web process serves at most
TEST_RUN_MAX_STREAMS at once and answers 503 `too_many_streams` beyond that, so watchers never
take every thread from triggers; and at most TEST_RUN_MAX_STREAMS_PER_CLIENT to one caller (its
token's name, else its address), 429 `too_many_client_streams` beyond, so one client — which
need never read a byte — cannot hold them all.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, g

from worker.client.watch import Item, WatchItem
from worker.core.events import RunEvent
from worker.core.runs import iso
from worker.core.status import EventKind

from . import schemas as s
from .api import NO_RUN, RUNS, answers, bp, service
from .auth import Caller
from .problems import TooManyClientStreams, TooManyStreams
from .waits import holds_its_process

#: seconds a client refused a stream is told to wait (Retry-After)
RETRY_AFTER_S = 5
#: what the OpenAPI document says of a 200 (the body is a stream, not JSON)
STREAM_ANSWER = {
    "description": "Server-Sent Events: `run` (the state now), then `status` and `log` as "
                   "they are written, then `end` (the run as it ended); `: keep-alive` "
                   "comments while nothing happens.",
    "content": {"text/event-stream": {"schema": {"type": "string"}}},
    "headers": {"Cache-Control": {"required": True, "schema": {"const": "no-cache"}},
                "X-Accel-Buffering": {"required": True, "schema": {"const": "no"}}},
}


class StreamSlots:
    """The streams one process may serve at once, in all and per client. The per-client counts
    hold only clients with a stream open, so there are never more of them than streams."""

    def __init__(self, limit: int, per_client: int) -> None:
        self.limit = limit
        self.per_client = per_client
        self._lock = threading.Lock()
        self._open = 0
        self._by_client: dict[str, int] = {}

    def take(self, client: str) -> None:
        """One stream for `client`, or TooManyClientStreams (429) when it holds its share,
        else TooManyStreams (503) when the process is full."""
        with self._lock:
            held = self._by_client.get(client, 0)
            if held >= self.per_client:
                raise TooManyClientStreams(self.per_client, retry_after=RETRY_AFTER_S)
            if self._open >= self.limit:
                raise TooManyStreams(self.limit, retry_after=RETRY_AFTER_S)
            self._open += 1
            self._by_client[client] = held + 1

    def give_back(self, client: str) -> None:
        with self._lock:
            self._open -= 1
            left = self._by_client.pop(client) - 1
            if left:
                self._by_client[client] = left


class EventStream:
    """The response body: SSE frames from `items`. Its slot is given back in `close()`, which
    the WSGI server calls however the response ends (done, client gone, error) — also for a
    body never iterated, which a generator's `finally` would miss."""

    def __init__(self, run_id: str, items: Iterator[WatchItem], slots: StreamSlots,
                 caller: Caller) -> None:
        self._run_id = run_id
        self._items = items
        self._slots: StreamSlots | None = slots
        self._caller = caller

    def __iter__(self) -> Iterator[bytes]:
        for item in self._items:
            yield frame(self._run_id, item, self._caller)

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if close is not None:
            close()
        slots, self._slots = self._slots, None
        if slots is not None:
            slots.give_back(self._caller.rate_key)


def _event_data(run_id: str, event: RunEvent) -> dict[str, Any]:
    if event.kind is EventKind.STATUS and event.status is not None:
        return {"run_id": run_id, "status": event.status.value, "at": iso(event.at_ms),
                "terminal": event.terminal}
    return {"run_id": run_id, "line": event.line}


def frame(run_id: str, item: WatchItem, caller: Caller) -> bytes:
    """One SSE frame (a keep-alive is a comment line); a run as `caller` may see it."""
    if item.item is Item.IDLE:
        return b": keep-alive\n\n"
    if item.item is Item.EVENT and item.event is not None:
        name, data = item.event.kind.value, _event_data(run_id, item.event)
    else:
        name = "run" if item.item is Item.SNAPSHOT else "end"
        data = s.RunOut.of(caller.view(item.run)) if item.run is not None \
            else {"run_id": run_id}
    text = json.dumps(data, separators=(",", ":"))
    head = f"id: {item.id}\n" if item.id else ""
    return f"{head}event: {name}\ndata: {text}\n\n".encode()


@bp.get("/test-runs/<path:run_id>/events", tags=[RUNS], responses=answers(
    _200=STREAM_ANSWER, _400=s.InvalidRequestBody, _404=NO_RUN,
    _429=s.TooManyClientStreamsBody,
    _503=s.one_of(s.QueueUnavailableBody, s.TooManyStreamsBody)))
def run_events(path: s.RunPath, header: s.EventsHeaders) -> Response:
    """Watch a run: its state now, each status change and log line as it is written, then
    its end. Resumes after `Last-Event-ID`."""
    slots: StreamSlots = current_app.extensions["testrun_streams"]
    caller: Caller = g.caller
    if holds_its_process():  # a stream would hold the whole process (nginx routes them away)
        raise TooManyStreams(0, retry_after=RETRY_AFTER_S)
    slots.take(caller.rate_key)
    try:
        items = service().watch(path.run_id, header.last_event_id)
    except BaseException:
        slots.give_back(caller.rate_key)
        raise
    resp = Response(EventStream(path.run_id, items, slots, caller),
                    mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"  # a proxy in front must not buffer it
    return resp


def register(app: Flask, max_streams: int, per_client: int) -> None:
    app.extensions["testrun_streams"] = StreamSlots(max_streams, per_client)
