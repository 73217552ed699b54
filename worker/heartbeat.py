"""Renews the slot lease of every running test run, from the worker's *main* process.

A pool child stuck in C code keeps its slot (the main process still renews it) until the hard
time limit ends it; a worker whose main process dies stops renewing, and its slots lapse within
TEST_RUN_HEARTBEAT_TTL. The renewal also carries cancellation to running runs: a run whose
record is terminal (cancelled while its revoke was lost, replaced, lost) is killed here.

It runs on its own thread so a slow Redis never stalls the worker's event loop, and it keeps
going through a warm shutdown until the last run it watches has ended.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from celery import bootsteps
from celery.worker import state

logger = logging.getLogger(__name__)


class HeartbeatStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool"}
    label = "TestRunHeartbeat"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._worker: Any = None

    def start(self, parent: Any) -> None:
        app = parent.app
        if not hasattr(app, "tracker"):
            return
        self._worker = parent
        try:
            warning = app.tracker.eviction_warning()
        except Exception as exc:  # noqa: BLE001 - Redis not up yet: the worker still starts
            warning = f"could not check Redis' maxmemory-policy: {exc}"
        if warning:
            logger.warning(warning)
        self._thread = threading.Thread(target=self._loop, args=(app,), daemon=True,
                                        name="testrun-heartbeat")
        self._thread.start()

    def stop(self, parent: Any) -> None:
        # not stopped here: a warm shutdown waits for running runs, which keep their lease
        self._stopping.set()

    def _running(self, task_name: str) -> list[Any]:
        for _ in range(3):
            try:
                return [r for r in list(state.active_requests)
                        if r.name == task_name and r.time_start and r.worker_pid]
            except RuntimeError:  # the set changed while copied; try again
                continue
        return []

    def _loop(self, app: Any) -> None:
        from .app import TASK_NAME

        interval = app.settings.heartbeat_interval
        tracker = app.tracker
        hostname = getattr(self._worker, "hostname", None)
        wait = threading.Event()
        while True:
            running = self._running(TASK_NAME)
            if self._stopping.is_set() and not running:
                return
            for request in running:
                self.beat(tracker, request, hostname)
            wait.wait(interval)

    def beat(self, tracker: Any, request: Any, hostname: str | None) -> None:
        try:
            verdict, status = tracker.heartbeat(request.id, hostname, request.worker_pid)
        except Exception as exc:  # noqa: BLE001 - Redis away: the next beat tries again
            logger.warning("test run %s: heartbeat failed (%s); retrying", request.id, exc)
            return
        if verdict == "terminal":
            logger.warning("test run %s is %s: stopping its process %s", request.id, status,
                           request.worker_pid)
            try:
                self._worker.pool.terminate_job(request.worker_pid, signal.SIGKILL)
            except Exception:  # noqa: BLE001
                logger.exception("could not stop test run %s", request.id)
        elif verdict == "reacquired":
            logger.warning("test run %s: lease had lapsed; slot taken back", request.id)
