"""The worker confirms that a stopped body is gone: what lets the slot of a run cancelled or
replaced while running pass on (strict single-flight: lib.lua keeps such a slot, `stopping`,
until its body has stopped or its lease lapses).

Celery reports a killed pool process through the pool's supervisor (a revoke or a lost worker,
then our signal handler records the end, which frees the slot). Measured here: that report
sometimes never comes — the pool had not yet noticed the death seconds later — and the slot
then waited for its lease (the heartbeat TTL). So whoever kills a run's process (the
`stop_test_run` command, the heartbeat) also watches the pid itself, on a short-lived thread:
once the process is gone (no such pid, or a zombie the pool has not reaped yet) it records that
(`RunStore.finish(body_gone=True)`: frees the kept slot of a run that is terminal; never ends a
live one), promoting the pending run. Whichever of the two comes first frees the slot; the
other finds it freed.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from ..core.status import RunStatus
from ..core.store import RunStore

logger = logging.getLogger(__name__)

#: how long a killed process may take to be gone before the watcher gives up (the signal
#: handler or the lease then frees the slot)
GONE_WITHIN_S = 5.0
POLL_S = 0.01


def gone(pid: int) -> bool:
    """The process no longer executes anything: no such pid, or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # pid (comm) state …: comm may hold spaces and parentheses; the state follows the
            # last ')'
            return stat.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def when_gone(store: RunStore, run_id: str, pid: int, worker: str | None) -> None:
    """Watch `pid` (just sent SIGKILL) and, once it is gone, free the slot its run kept."""

    def watch() -> None:
        deadline = time.monotonic() + GONE_WITHIN_S
        while not gone(pid):
            if time.monotonic() > deadline:
                logger.warning("test run %s: process %s still there %.0fs after its kill",
                               run_id, pid, GONE_WITHIN_S)
                return
            time.sleep(POLL_S)  # polling a pid: there is no event to wait on
        try:
            store.finish(run_id, RunStatus.CANCELLED, worker=worker, body_gone=True)
        except Exception:  # noqa: BLE001 - the signal handler or the lease frees it then
            logger.exception("test run %s: could not record that its body is gone", run_id)

    threading.Thread(target=watch, daemon=True, name=f"testrun-gone-{pid}").start()
