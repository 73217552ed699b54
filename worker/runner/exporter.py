"""The worker's Prometheus exporter: GET /metrics from the worker's main process, for its own
counts, its pool children's (multiprocess mode, set up at worker_init, before the pool forks)
and the live gauges (worker/core/metrics.py)."""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.signals import worker_init, worker_shutdown
from prometheus_client import start_http_server

from .. import workflows
from ..core.gauges import LiveState, live_state
from ..core.metrics import (
    prepare_multiprocess,
    remove_multiprocess_dir,
    scrape_registry,
    subscribe,
)

logger = logging.getLogger(__name__)


def on_worker_init(**_: Any) -> None:
    """In the worker's main process, before the pool forks: count in multiprocess mode."""
    prepare_multiprocess("worker")
    subscribe()


def on_worker_shutdown(**_: Any) -> None:
    remove_multiprocess_dir()


class MetricsStep(bootsteps.StartStopStep):
    """Serves GET /metrics on WORKER_METRICS_ADDRESS:WORKER_METRICS_PORT from the worker's main
    process: its own counts and its pool children's, and the live gauges. A port that is taken
    is logged and the worker runs on without an exporter."""

    label = "TestRunMetrics"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._server: Any = None

    def start(self, parent: Any) -> None:
        app = parent.app
        if not hasattr(app, "store"):
            return
        settings = app.settings
        store = app.store
        live = LiveState(lambda: live_state(store, [w.id for w in workflows.all_workflows()]))
        try:
            self._server, _ = start_http_server(
                settings.worker_metrics_port, settings.worker_metrics_address,
                registry=scrape_registry(live))
        except OSError as exc:
            logger.error("metrics exporter could not listen on %s:%s (%s); running without it",
                         settings.worker_metrics_address, settings.worker_metrics_port, exc)
            return
        logger.info("metrics exporter listening on http://%s:%s/metrics",
                    settings.worker_metrics_address, settings.worker_metrics_port)

    def stop(self, parent: Any) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_connected = False


def connect(app: Any) -> None:
    """Wire the exporter and the multiprocess set-up into a Celery app's worker."""
    global _connected
    app.steps["worker"].add(MetricsStep)
    if not _connected:
        worker_init.connect(on_worker_init, weak=False)
        worker_shutdown.connect(on_worker_shutdown, weak=False)
        _connected = True
