"""read.lua's wrapper: a run as read (settling a lapsed lease first), alone, queued on a
pipeline for a runs list, or with the bounds of its event stream (a watcher's snapshot)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..keys import Keys
from ..runs import Run
from .base import LuaScript, run_from_reply
from .replies import ReadFields


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
