"""Prometheus metrics: one lifecycle subscriber for both processes, and the registry a scrape
reads — these counts plus the gauges read from Redis (worker/core/gauges.py) — which the web
serves at /metrics and the worker's exporter in worker/runner/exporter.py.

Each process counts what happens in it, so every event is counted exactly once in the fleet:
the web counts admissions, conflicts, cancels, supersedes, joins and the endings it records (a
cancel, a replace, a publish failure, a lapsed lease read); the worker counts starts and the
outcomes, releases, renewals and fencings it records. A counter both expose (e.g.
`testrun_runs_finished_total`) is the sum over both jobs.

Multiprocess mode (prometheus-client): gunicorn workers and Celery pool children each write
their counts to files in PROMETHEUS_MULTIPROC_DIR, and the scraping process adds them up. The
directory must be in the environment before a process creates its first metric value, and
Celery's `celery` command lets Flower's plugin import prometheus_client before any of our
code: `prepare_multiprocess()` sets the directory and re-creates prometheus_client's value
class, in gunicorn's master (gunicorn.conf.py) and in the worker's main process (worker_init,
before the pool forks).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Summary, values
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from .lifecycle import LifecycleHooks, lifecycle
from .status import DeliveryOutcome, ErrorType, ReleaseReason, RunStatus, WebhookTarget

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: set beside MULTIPROC_ENV when we created the directory (so we remove it at exit)
OWNED_ENV = "TESTRUNS_METRICS_DIR_OWNED"

RUN_SECONDS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200)
#: finer around 150 s, half the default queue timeout (TestRunQueueWaitHigh's threshold)
WAIT_SECONDS = (0.005, 0.025, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 150, 180, 240, 300)


def prepare_multiprocess(kind: str) -> str:
    """Make this process tree count in multiprocess mode: PROMETHEUS_MULTIPROC_DIR if set (the
    operator's, one per web or worker instance), else a fresh temporary directory of our own.
    Call it before the processes that count are forked."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        path = tempfile.mkdtemp(prefix=f"testruns-{kind}-metrics-")
        os.environ[MULTIPROC_ENV] = path
        os.environ[OWNED_ENV] = path
    os.makedirs(path, exist_ok=True)
    # prometheus_client chose its value class when it was first imported (maybe by Flower's
    # plugin, before this ran): choose again, now that the directory is known
    values.ValueClass = values.get_value_class()
    return path


def remove_multiprocess_dir() -> None:
    """Remove the directory prepare_multiprocess() created (never an operator's own)."""
    path = os.environ.get(OWNED_ENV)
    if path and path == os.environ.get(MULTIPROC_ENV):
        shutil.rmtree(path, ignore_errors=True)


class Metrics:
    """Every counter and histogram, created once per process (after prepare_multiprocess)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        w = ["workflow"]
        self.admissions = Counter("testrun_admissions", "Triggers that took a slot or became "
                                  "the pending run (web)", ["workflow"], registry=r)
        self.conflicts = Counter("testrun_conflicts", "Triggers refused 409: a run holds the "
                                 "slot (web)", ["workflow"], registry=r)
        self.cancels = Counter("testrun_cancels", "Cancels recorded (web)", w, registry=r)
        self.supersedes = Counter("testrun_superseded", "Pending runs a newer queue trigger "
                                  "took the place of (web)", ["workflow"], registry=r)
        self.joins = Counter("testrun_joins", "Join triggers answered with a run of the same "
                             "input and workflow version (web)", w, registry=r)
        self.started = Counter("testrun_runs_started", "Runs whose body started", w, registry=r)
        self.refused = Counter("testrun_runs_refused", "Deliveries the start check refused: "
                               "the run was cancelled, expired, superseded or already started "
                               "(worker)", ["status"], registry=r)
        self.finished = Counter("testrun_runs_finished", "Runs that reached a terminal status, "
                                "counted by the process that recorded it",
                                ["workflow", "status", "error_type"], registry=r)
        self.released = Counter("testrun_slots_released", "Slots freed, by the reason recorded "
                                "on the run", ["reason"], registry=r)
        # per workflow a count and a sum (2 values), the distribution over all workflows (15):
        # a histogram per workflow cost each pool process 16 values and ~190 µs on a
        # workflow's first run there (measured), and Prometheus 15 series per workflow
        self.duration = Summary("testrun_run_duration_seconds", "Start to end of runs that "
                                "started, by workflow (count and sum)", ["workflow"], registry=r)
        self.run_seconds = Histogram("testrun_run_seconds", "Start to end of runs that "
                                     "started, all workflows (the distribution)",
                                     buckets=RUN_SECONDS, registry=r)
        self.queue_wait = Histogram("testrun_queue_wait_seconds", "Admission to start, the "
                                    "queue's (no workflow label)", buckets=WAIT_SECONDS, registry=r)
        self.renewals = Counter("testrun_heartbeat_renewals", "Lease renewals by the worker's "
                                "heartbeat (reacquired: it had lapsed and was taken back)",
                                ["result"], registry=r)
        self.fencings = Counter("testrun_fencings", "Runs killed by their worker because their "
                                "lease could not be renewed in time", registry=r)
        self.webhook_attempts = Counter("testrun_webhook_attempts", "Webhook attempts, by "
                                        "target and how each ended (worker)",
                                        ["target", "outcome"], registry=r)


_metrics: Metrics | None = None
_lock = threading.Lock()


def metrics() -> Metrics:
    """This process's metrics, created on first use."""
    global _metrics
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = Metrics()
    return _metrics


class Bound:
    """A labelled metric's children, each bound once per label set and kept: counting is then
    a dict lookup and the value's own increment (prometheus_client's `labels()` validates and
    locks on every call: a few µs on every trigger and conflict, profiled). A race binds the
    same child twice (prometheus_client returns the one it has); nothing else is shared."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Any) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Any] = {}

    def __call__(self, *labels: str) -> Any:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child


class MetricsHooks(LifecycleHooks):
    """The lifecycle, counted (children bound once per label set, per process: `Bound`)."""

    def __init__(self) -> None:
        self._bound: Metrics | None = None
        self._children: dict[str, Bound] = {}

    def _of(self, name: str) -> Bound:
        """The bound children of this process's metric `name` (re-bound if the process's
        metrics were made again)."""
        m = metrics()
        if m is not self._bound:
            self._bound, self._children = m, {}
        found = self._children.get(name)
        if found is None:
            found = self._children[name] = Bound(getattr(m, name))
        return found

    def admitted(self, run_id: str, workflow_id: str, *,
                 triggered_by: str | None = None, pending: bool = False) -> None:
        self._of("admissions")(workflow_id).inc()

    def superseded(self, run_id: str, workflow_id: str, by_run_id: str) -> None:
        self._of("supersedes")(workflow_id).inc()

    def joined(self, run_id: str, workflow_id: str) -> None:
        self._of("joins")(workflow_id).inc()

    def conflict(self, run_id: str, workflow_id: str) -> None:
        self._of("conflicts")(workflow_id).inc()

    def cancelled(self, run_id: str, workflow_id: str) -> None:
        self._of("cancels")(workflow_id).inc()

    def started(self, run_id: str, workflow_id: str, worker: str, *,
                queue_wait_s: float | None = None) -> None:
        self._of("started")(workflow_id).inc()
        if queue_wait_s is not None:
            metrics().queue_wait.observe(max(0.0, queue_wait_s))

    def refused(self, run_id: str, workflow_id: str, status: RunStatus | None) -> None:
        self._of("refused")(status.value if status else "missing").inc()

    def finished(self, run_id: str, workflow_id: str, status: RunStatus,
                 error_type: ErrorType | None, *, duration_s: float | None = None) -> None:
        self._of("finished")(workflow_id, status.value,
                             error_type.value if error_type else "").inc()
        if duration_s is not None:
            self._of("duration")(workflow_id).observe(max(0.0, duration_s))
            metrics().run_seconds.observe(max(0.0, duration_s))

    def released(self, run_id: str, workflow_id: str, reason: ReleaseReason) -> None:
        self._of("released")(reason.value).inc()

    def renewed(self, run_id: str, workflow_id: str, reacquired: bool) -> None:
        self._of("renewals")("reacquired" if reacquired else "renewed").inc()

    def fenced(self, run_id: str, workflow_id: str, pid: int, why: str) -> None:
        metrics().fencings.inc()

    def webhook_attempted(self, run_id: str, workflow_id: str, target: WebhookTarget,
                          attempt: int, outcome: DeliveryOutcome, *,
                          status_code: int | None = None, error: str | None = None) -> None:
        self._of("webhook_attempts")(target.value, outcome.value).inc()


#: the one subscriber per process (subscribing it twice is a no-op)
HOOKS = MetricsHooks()


#: the endings an alert counts (deploy/prometheus/alerts.yml: runs that died without an
#: outcome), created at 0 for each registered workflow: Prometheus' rate() and increase() see
#: a series only from its second sample, so a counter born at 1 would hide its first run
ALERTED_ENDINGS = ((RunStatus.LOST, ErrorType.HEARTBEAT_LOST),
                   (RunStatus.FAILED, ErrorType.WORKER_LOST))


def subscribe() -> None:
    """Count this process's lifecycle (once per process), starting the alerted endings at 0."""
    from .. import workflows  # loaded by now: the app that subscribes has loaded them

    lifecycle.subscribe(HOOKS)
    finished = metrics().finished
    for workflow in workflows.all_workflows():
        for status, error_type in ALERTED_ENDINGS:
            finished.labels(workflow.id, status.value, error_type.value)


class _Local(Collector):
    """This process's own registry, for a process that is not in multiprocess mode (the web
    app under the Flask test client, say)."""

    def collect(self) -> Iterable[Metric]:
        return metrics().registry.collect()


def scrape_registry(live: Collector | None = None) -> CollectorRegistry:
    """The registry a /metrics answer is generated from: every process's counts (multiprocess
    mode) or this process's, plus the live gauges."""
    registry = CollectorRegistry()
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        MultiProcessCollector(registry, path)
    else:
        registry.register(_Local())
    if live is not None:
        registry.register(live)
    return registry
