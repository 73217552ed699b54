"""Renews the slot lease of every running test run, from the worker's *main* process.

A pool child stuck in C code keeps its slot (the main process still renews it) until the hard
time limit ends it; a worker whose main process dies stops renewing, and its slots lapse within
TEST_RUN_HEARTBEAT_TTL. The renewal also carries cancellation to running runs: a run whose
record was ended over its head (cancelled while its revoke was lost, replaced, lost) is killed.

It also fences: when a renewal fails and the next beat would come too late to save the lease
(Redis away, a partition), the run's process is killed now, before the lease can lapse, so a
lapsed slot never has a body still executing behind it. Such a run is recorded `lost`.

And it ends queued runs revoked from outside (Flower) within an interval (worker/runner/revokes.py),
promotes the pending run of a slot whose lease lapsed (worker/runner/upkeep.py), and it sweeps
the webhooks (worker/core/webhooks.py): it publishes the deliveries that are due
(a retry whose time came, a claim whose task never ran) and hands over the endings a process
died before handing over.

It runs on its own thread so a slow Redis never stalls the worker's event loop, and it keeps
going through a warm shutdown until the last run it watches has ended — for at most
TEST_RUN_SHUTDOWN_GRACE: then it stops the runs still running (worker/runner/drain.py).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Any

from celery import bootsteps
from celery.worker import state

from .. import workflows
from ..core.celery_app import TASK_NAME
from ..core.keys import workflow_of
from ..core.lifecycle import lifecycle
from ..core.lua import BeatVerdict
from ..core.status import ENDED_OVER_ITS_HEAD
from ..core.store import RunStore
from . import confirm, upkeep
from .drain import Drain
from .revokes import RevokedRuns
from .stops import StopKind

logger = logging.getLogger(__name__)

class HeartbeatStep(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Pool"}
    label = "TestRunHeartbeat"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._worker: Any = None
        self._renewed: dict[str, float] = {}  # run id → last successful renewal (time.time)
        self._drain: Drain | None = None
        self._wake = threading.Event()  # set by stop(): recompute the wait against the drain

    def start(self, parent: Any) -> None:
        app = parent.app
        if not hasattr(app, "stops"):  # not our worker app
            return
        self._worker = parent
        self._drain = Drain(app.settings.shutdown_grace)
        try:
            warning = app.store.eviction_warning()
        except Exception as exc:  # noqa: BLE001 - Redis not up yet: the worker still starts
            warning = f"could not check Redis' maxmemory-policy: {exc}"
        if warning:
            logger.warning(warning)
        self._thread = threading.Thread(target=self._loop, args=(app,), daemon=True,
                                        name="testrun-heartbeat")
        self._thread.start()

    def stop(self, parent: Any) -> None:
        """A warm shutdown (called before the pool waits for its processes): the heartbeat
        goes on renewing the running runs' leases, for the drain time at most."""
        if self._drain is not None:
            self._drain.begin(len(self._running()))
        self._stopping.set()
        self._wake.set()

    def _running(self) -> list[Any]:
        for _ in range(3):
            try:
                return [r for r in list(state.active_requests)
                        if r.name == TASK_NAME and r.time_start and r.worker_pid]
            except RuntimeError:  # the set changed while copied; try again
                continue
        return []

    def _loop(self, app: Any) -> None:
        interval = app.settings.heartbeat_interval
        ttl = app.settings.heartbeat_ttl
        store: RunStore = app.store
        hostname = getattr(self._worker, "hostname", None)
        revoked = RevokedRuns()
        while True:
            running = self._running()
            if self._stopping.is_set() and not running:
                return
            ids = {r.id for r in running}
            for gone in [run_id for run_id in self._renewed if run_id not in ids]:
                del self._renewed[gone]
            reached = True
            for request in running:
                if not app.stops.fenced(request.id):  # killed already: never renew
                    reached = self.beat(app, request, hostname, ttl, interval) and reached
            revoked.end_queued(store)  # a revoke from Flower frees a queued run's slot now
            if reached:  # (Redis away: no sweep delays the next beat, which may have to fence)
                upkeep.sweep(store)  # a lapsed slot passes to its pending run
            self.sweep_webhooks(app)
            drain = self._drain
            if drain is not None and drain.over():
                self.stop_draining(app, running, drain)
            self._wake.wait(drain.wait(interval) if drain is not None else interval)
            self._wake.clear()

    def stop_draining(self, app: Any, running: list[Any], drain: Drain) -> None:
        """The drain time is over: stop each run still running, saying why first (stops.py),
        so its signal handler records it `cancelled`, `worker_shutdown`."""
        for request in running:
            stop = app.stops.peek(request.id)
            if stop is not None:
                continue  # already being stopped (fenced, cancelled, this drain)
            app.stops.shutdown(request.id, drain.why())
            if not self._stop(request, request.worker_pid, drain.why()):
                app.stops.unfence(request.id, StopKind.SHUTDOWN)

    @staticmethod
    def sweep_webhooks(app: Any) -> None:
        webhooks = getattr(app, "webhooks", None)
        if webhooks is None:
            return
        try:
            webhooks.sweep_outboxes([w.id for w in workflows.all_workflows()])
            if webhooks.enabled:
                webhooks.claim_due()
        except Exception as exc:  # noqa: BLE001 - Redis away: the next beat sweeps again
            logger.warning("webhook sweep failed (%s); retrying at the next beat", exc)

    def beat(self, app: Any, request: Any, hostname: str | None, ttl: float,
             interval: float) -> bool:
        """Renew one run's lease (or fence it); False when Redis did not answer."""
        store: RunStore = app.store
        pid = request.worker_pid
        # the start check set the lease when the run began: that is the first renewal
        last = self._renewed.setdefault(request.id, request.time_start or time.time())
        sent = time.time()  # a lease set by this call runs from no earlier than now
        try:
            beat = store.heartbeat(request.id, hostname, pid)
        except Exception as exc:  # noqa: BLE001 - Redis away: the next beat tries again
            lapses_at = last + ttl
            # the next beat (an interval away, plus a margin for a slow loop) would be too late
            if time.time() + interval * 1.25 >= lapses_at:
                why = (f"its lease could not be renewed ({exc}) and would lapse in "
                       f"{max(0.0, lapses_at - time.time()):.1f}s")
                app.stops.fence(request.id, why)
                if self._stop(request, pid, why):
                    lifecycle.fenced(request.id, workflow_of(request.id) or "", pid, why)
                else:
                    app.stops.unfence(request.id)
            else:
                logger.warning("test run %s: heartbeat failed (%s); retrying", request.id, exc)
            return False
        if beat.verdict in (BeatVerdict.RENEWED, BeatVerdict.REACQUIRED):
            self._renewed[request.id] = sent
            if beat.verdict is BeatVerdict.REACQUIRED:
                logger.warning("test run %s: lease had lapsed; slot taken back", request.id)
        elif beat.verdict is BeatVerdict.TERMINAL and beat.status in ENDED_OVER_ITS_HEAD:
            assert beat.status is not None
            if self._stop(request, pid, f"it is {beat.status.value}"):
                confirm.when_gone(store, request.id, pid, hostname)
        return True

    def _stop(self, request: Any, pid: int, why: str) -> bool:
        # the snapshot may be stale: kill only if that process still runs this very request
        if request not in state.active_requests or request.worker_pid != pid:
            return False
        logger.warning("test run %s: stopping its process %s: %s", request.id, pid, why)
        lifecycle.stopped(request.id, workflow_of(request.id) or "", pid, why)
        try:
            self._worker.pool.terminate_job(pid, signal.SIGKILL)
        except Exception:  # noqa: BLE001
            logger.exception("could not stop test run %s", request.id)
            return False
        return True
