"""read.lua's wrapper: a run as read (settling a lapsed lease first), alone, queued on a
pipeline for a runs list, or with the bounds of its event stream (a watcher's snapshot); and
existing.lua's: which of many workflows have a key (what the heartbeat's sweeps visit)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.cluster import RedisCluster

from ..keys import Keys
from ..runs import Run
from .base import LuaScript, run_from_reply
from .replies import ReadFields

T = TypeVar("T")


@dataclass(frozen=True)
class RunSnapshot:
    """A run as read, with the first and last ids of its event stream at that instant (None:
    no stream): the events after `last_event_id` are exactly what happened since. `settled`:
    this read found the run's lease lapsed and ended it (its status says how)."""

    run: Run
    first_event_id: str | None
    last_event_id: str | None
    settled: bool = False


class Read(LuaScript):
    name = "read"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str,
                 client: Any = None) -> Run | None:
        return self.decode(self.queue(keys, workflow_id, run_id, client))

    @staticmethod
    def settled(reply: Any) -> bool:
        """This read ended the run (a lapsed lease: it is now expired or lost)."""
        return bool(reply) and len(reply) > 4 and bool(reply[4])

    def queue(self, keys: Keys, workflow_id: str, run_id: str, client: Any = None,
              fields: ReadFields = ReadFields.FULL) -> Any:
        """Run (or, on a pipeline, queue) the read; `decode` turns its reply into a Run."""
        return self._call([keys.slot(workflow_id), keys.run(workflow_id, run_id),
                           keys.logs(workflow_id, run_id), keys.events(workflow_id, run_id),
                           keys.outbox(workflow_id), keys.pending(workflow_id)],
                          [run_id, fields.value], client)

    @staticmethod
    def decode(reply: Any) -> Run | None:
        return run_from_reply(reply)

    def snapshot(self, keys: Keys, workflow_id: str, run_id: str) -> RunSnapshot | None:
        """The run and the bounds of its event stream, read in one atomic step."""
        reply = self.queue(keys, workflow_id, run_id)
        run = run_from_reply(reply)
        if run is None:
            return None
        return RunSnapshot(run, reply[2] or None, reply[3] or None, self.settled(reply))


class Existing(LuaScript):
    name = "existing"

    #: keys per ask: EXISTS counts them in C (~0.1 µs a key); only a chunk with some but not
    #: all of them existing is asked again, of existing.lua (~1.5 µs a key, measured), which
    #: says which. A chunk blocks Redis for about that long: other clients run between them
    CHUNK = 1000

    def which(self, items: Sequence[T], key_of: Callable[[T], str],
              chunk: int = CHUNK) -> list[T]:
        """The items whose key (`key_of(item)`) exists, in order: one round trip when none
        or all of each chunk's do, two otherwise. On a Redis Cluster all of them (one call
        cannot hold keys of many slots: the caller reads each, as it would without this)."""
        client = self._script.registered_client
        if not items or isinstance(client, RedisCluster):
            return list(items)
        chunks = [items[start:start + chunk] for start in range(0, len(items), chunk)]
        keys = [[key_of(item) for item in part] for part in chunks]
        pipe = client.pipeline(transaction=False)
        for named in keys:
            pipe.exists(*named)
        found: list[list[T]] = [[] for _ in chunks]
        some = []
        for n, (part, count) in enumerate(zip(chunks, pipe.execute(), strict=True)):
            if count == len(part):
                found[n] = list(part)
            elif count:
                some.append(n)
        if some:
            pipe = client.pipeline(transaction=False)
            for n in some:
                self._call(keys[n], [], pipe)
            for n, positions in zip(some, pipe.execute(), strict=True):
                found[n] = [chunks[n][int(i) - 1] for i in positions]
        return [item for part in found for item in part]
