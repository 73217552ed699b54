"""Why this worker stopped a run's process: the one owner of that answer.

A process killed by its worker surfaces in Celery as a lost worker (`WorkerLostError`) or a
revoke, which alone would read `worker_lost`. Whoever stops a run records why here first — the
heartbeat when it fences a run (its lease could not be renewed in time: `lost`), the
`stop_test_run` command when a cancel, a replace or an operator asked (`cancelled`), the
worker's drain at a warm shutdown when TEST_RUN_SHUTDOWN_GRACE ran out (`cancelled`,
`worker_shutdown`: worker/runner/drain.py), the hard time limit (the hung process is killed
before its slot is freed: `timed_out`, classified as usual) — and the signal handler that
records the run's end asks once (`take`).

One instance lives on the worker's app (`app.stops`), in the worker's main process, where the
heartbeat, the remote-control commands and the hard-limit and lost-worker signals all run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from dataclasses import dataclass
from enum import Enum

from billiard.exceptions import TimeLimitExceeded

from ..core.store import RunStore

logger = logging.getLogger(__name__)


class StopKind(Enum):
    FENCED = "fenced"        # the heartbeat killed it: its lease could not be renewed in time
    REQUESTED = "requested"  # stop_test_run: a cancel, a replace or an operator's release
    TIME_LIMIT = "time_limit"  # the hard limit: its hung process was killed first
    SHUTDOWN = "shutdown"    # still running when its worker's drain time ran out (a deploy)


@dataclass(frozen=True)
class Stop:
    kind: StopKind
    why: str = ""


class Stops:
    """Stops this worker made, by run id, until the signal handler takes them."""

    def __init__(self, store: RunStore) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._stops: dict[str, Stop] = {}

    def fence(self, run_id: str, why: str) -> None:
        """The heartbeat is about to kill a run whose lease it cannot renew in time; from now
        on it is never renewed again (`fenced`)."""
        with self._lock:
            self._stops[run_id] = Stop(StopKind.FENCED, why)

    def unfence(self, run_id: str, kind: StopKind = StopKind.FENCED) -> None:
        """The kill did not happen (the process had moved on): nothing to record."""
        with self._lock:
            if (found := self._stops.get(run_id)) and found.kind is kind:
                del self._stops[run_id]

    def fenced(self, run_id: str) -> bool:
        with self._lock:
            found = self._stops.get(run_id)
        return found is not None and found.kind is StopKind.FENCED

    def shutdown(self, run_id: str, why: str) -> None:
        """The drain is about to kill a run its warm shutdown could not wait for any longer."""
        with self._lock:
            self._stops.setdefault(run_id, Stop(StopKind.SHUTDOWN, why))

    def peek(self, run_id: str) -> Stop | None:
        """Why the run's process was stopped, without taking the answer."""
        with self._lock:
            return self._stops.get(run_id)

    def requested(self, run_id: str) -> None:
        """stop_test_run is about to kill this run's process: its end is a cancel."""
        with self._lock:
            self._stops.setdefault(run_id, Stop(StopKind.REQUESTED, "cancelled by request"))

    def take(self, run_id: str | None, exception: BaseException | None = None) -> Stop | None:
        """Why the run's process was stopped (once: the record is taken), or None if this
        worker did not stop it. On a hard time limit, the hung process is killed here first:
        Celery sends task_failure *before* billiard kills the child (TERM, 0.1 s, then KILL),
        and the slot must never be free while the body still runs."""
        if not run_id:
            return None
        with self._lock:
            found = self._stops.pop(run_id, None)
        if found is None and isinstance(exception, TimeLimitExceeded):
            self._kill_hung_child(run_id)
            return Stop(StopKind.TIME_LIMIT)
        return found

    def _kill_hung_child(self, run_id: str) -> None:
        try:
            body = self._store.body_of(run_id)
            pid = body[1] if body else None
            if pid and _is_our_child(pid):
                os.kill(pid, signal.SIGKILL)
        except Exception:  # noqa: BLE001 - billiard still kills it a moment later
            logger.exception("could not kill the hung process of test run %s", run_id)


def _is_our_child(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1]) == os.getpid()
    except (OSError, ValueError, IndexError):
        return False
