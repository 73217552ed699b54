"""Following one run: its current state, then each event as it is written, then its end.

`follow()` is what GET /api/test-runs/<run>/events streams; `wait_for_end()` is what a
`?wait=` waits with (the same stream, read the same way, until the run ends or time is up).
Both wait in Redis (XREAD BLOCK, at most TEST_RUN_STREAM_KEEPALIVE at a time), so a watcher
costs no polling loop: between
events it makes one call per keep-alive interval, which also reads the run — the read that
settles a lapsed lease (expired / lost) and writes its status event, so a run whose worker died
still reaches its end on the stream.

The waiting happens on a client of its own (`EventReader`), apart from the request path's pool.

Resuming: a client that sends the id of the last event it saw (Last-Event-ID) gets the events
after it; if that id is no longer in the stream (trimmed, expired, or not an id at all), it
gets the current state again first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import redis

from ..core.connection import redis_client
from ..core.errors import REDIS_OUTAGES, RunNotFound
from ..core.events import EVENTS_PER_READ, RunEvent, stream_position
from ..core.keys import workflow_of
from ..core.lua import RunSnapshot
from ..core.runs import Run
from ..core.store import RunStore

logger = logging.getLogger(__name__)

#: the id of a snapshot of a run whose stream has no entries yet: every entry comes after it
START = "0-0"


class Item(StrEnum):
    SNAPSHOT = "snapshot"  # the run as it is now (first, or again after a lost position)
    EVENT = "event"        # a status change or a log line
    END = "end"            # the run as it ended; nothing follows
    IDLE = "idle"          # nothing happened for a keep-alive interval


@dataclass(frozen=True)
class WatchItem:
    item: Item
    id: str | None = None
    run: Run | None = None          # SNAPSHOT, END
    event: RunEvent | None = None   # EVENT


class EventReader:
    """A run's events, read from its stream with XREAD BLOCK on a client of its own: each
    waiting reader holds a connection for up to TEST_RUN_STREAM_KEEPALIVE, so they get a pool
    of their own (sized `max_connections`: TEST_RUN_MAX_STREAMS for the event streams,
    TEST_RUN_MAX_WAITERS for `?wait=`) and a socket timeout that long, apart from the request
    path's. The client is built on first use, once per reader (the service keeps one for the
    streams and one for the waiters), and thread-safe."""

    def __init__(self, store: RunStore, max_connections: int | None = None,
                 name: str = "streams") -> None:
        self.store = store
        self.max_connections = max_connections or store.settings.max_streams
        #: its connections' name in CLIENT LIST: `<TEST_RUN_KEY_PREFIX>-<name>`
        self.client_name = f"{store.settings.key_prefix}-{name}"
        self._lock = threading.Lock()
        self._client: redis.Redis | None = None

    def _redis(self) -> redis.Redis:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    settings = self.store.settings
                    self._client = redis_client(settings, block_s=settings.stream_keepalive,
                                                max_connections=self.max_connections,
                                                client_name=self.client_name)
        return self._client

    def after(self, run_id: str, after: str, block_s: float) -> list[RunEvent]:
        """The run's events after the stream id `after`, waiting up to `block_s` for one
        (0: do not wait)."""
        workflow_id = workflow_of(run_id)
        if workflow_id is None:
            raise RunNotFound(run_id)
        key = self.store.keys.events(workflow_id, run_id)
        # (BLOCK 0 would wait for ever: a wait under a millisecond still blocks one)
        block = max(1, int(block_s * 1000)) if block_s > 0 else None
        reply: Any = self._redis().xread({key: after}, count=EVENTS_PER_READ, block=block)
        return [RunEvent.from_redis(event_id, fields)
                for _, entries in reply or [] for event_id, fields in entries]


def _resumable(after: str | None, snap: RunSnapshot) -> bool:
    """Whether the events after `after` are all still in the stream."""
    position, first = stream_position(after), stream_position(snap.first_event_id)
    last = stream_position(snap.last_event_id)
    if position is None or first is None or last is None:
        return False
    return first <= position <= last or position == (first[0], first[1] - 1)


def follow(events: EventReader, snap: RunSnapshot, after: str | None,
           wait_s: float) -> Iterator[WatchItem]:
    store, run_id = events.store, snap.run.run_id
    if after is not None and _resumable(after, snap):
        cursor = after
    else:
        cursor = snap.last_event_id or START
        yield WatchItem(Item.SNAPSHOT, cursor, run=snap.run)
    if snap.run.terminal:
        # ended already: what the client has not seen, then the end, without waiting
        yield from _drain(events, run_id, cursor)
        yield WatchItem(Item.END, snap.last_event_id or cursor, run=snap.run)
        return
    try:
        while True:
            found = events.after(run_id, cursor, wait_s)
            for event in found:
                cursor = event.id
                yield WatchItem(Item.EVENT, event.id, event=event)
                if event.terminal:
                    yield _end(store, run_id, cursor)
                    return
            if found:
                continue
            yield WatchItem(Item.IDLE)
            run = store.get(run_id)  # settles a lapsed lease, writing its status event
            if run is None:  # its record outlived its retention while we waited
                return
            if run.terminal:  # its terminal event is missing (the stream expired or was lost)
                yield from _drain(events, run_id, cursor)
                yield WatchItem(Item.END, cursor, run=run)
                return
    except REDIS_OUTAGES as exc:
        # mid-stream there is no status to answer with: end it; the client resumes from the
        # last id it saw (and is told 503 while Redis stays away)
        logger.warning("event stream of %s ended: Redis unreachable (%s)", run_id, exc)


def wait_for_end(events: EventReader, run: Run, cursor: str | None, *, deadline: float,
                 slice_s: float, gone: Callable[[], bool] | None = None) -> Run:
    """`run` once it is terminal, or as it is when `deadline` (time.monotonic()) passes or the
    client is `gone()` (asked between waits of at most `slice_s`). It waits on the run's stream
    from `cursor` (XREAD BLOCK: no polling), and after each quiet slice reads the run, which
    settles a lapsed lease. Redis going away ends the wait with the run as last known."""
    store, run_id = events.store, run.run_id
    position = cursor or START
    try:
        while not run.terminal:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            found = events.after(run_id, position, min(left, slice_s))
            if found:
                position = found[-1].id
            if any(event.terminal for event in found) or not found:
                run = store.get(run_id) or run
            if gone is not None and not run.terminal and gone():
                break
    except REDIS_OUTAGES as exc:
        logger.warning("wait on %s ended: Redis unreachable (%s)", run_id, exc)
    return run


def _drain(events: EventReader, run_id: str, cursor: str) -> Iterator[WatchItem]:
    """The events after `cursor` that are already written, up to the terminal one."""
    while True:
        found = events.after(run_id, cursor, 0)
        for event in found:
            cursor = event.id
            if event.terminal:
                return
            yield WatchItem(Item.EVENT, event.id, event=event)
        if not found:
            return


def _end(store: RunStore, run_id: str, event_id: str) -> WatchItem:
    run = store.get(run_id)
    return WatchItem(Item.END, event_id, run=run)
