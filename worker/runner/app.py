"""The Celery app as a worker runs it: the shared app (worker/core/celery_app.py) plus the
task and the webhook task, its signal handlers, the worker's bootsteps (heartbeat, liveness,
metrics exporter) and its log set-up. `celery -A worker` finds it through `worker.celery`."""

from __future__ import annotations

import warnings
from typing import Any, cast

from celery.exceptions import CPendingDeprecationWarning
from celery.signals import celeryd_after_setup

from ..core import publish, webhooks
from ..core.celery_app import TestRunCelery, create_celery
from ..core.settings import Settings
from . import (
    consumer,
    control,
    exporter,
    forks,
    heartbeat,
    liveness,
    signals,
    tasks,
    worker_logs,
)
from .stops import Stops


class WorkerCelery(TestRunCelery):
    """The worker's app: also the one record of why it stopped a run's process."""

    stops: Stops
    webhooks: webhooks.Webhooks


def _quiet_the_reconnect_warning(**_: Any) -> None:
    """Celery warns at every broker reconnect that worker_cancel_long_running_tasks_on_
    connection_loss will default to True in 6.0, even when it is set; ours is set per broker on
    purpose (worker/core/rabbit.py). Added after Celery's logging set-up, which puts its own
    `always` filter for the category first."""
    warnings.filterwarnings("ignore", message=r"\s*In Celery 5\.1 we introduced an optional",
                            category=CPendingDeprecationWarning)


def create_worker_app(settings: Settings | None = None) -> WorkerCelery:
    settings = settings or Settings.from_env()
    app = cast(WorkerCelery, create_celery(settings, cls=WorkerCelery))
    app.stops = Stops(app.store)
    publish.install(app)  # a run promoted by this worker's release is published by it
    app.webhooks = webhooks.install(app)  # this process's endings are handed over through it
    app.conf.worker_consumer = consumer.PATH  # no native delayed delivery (quorum queues)
    app.steps["consumer"].add(consumer.PrefetchAfterReconnect)
    celeryd_after_setup.connect(_quiet_the_reconnect_warning, weak=False)
    forks.connect()  # first of the pool process's init (an orphan does nothing else)
    tasks.register(app)
    control.register()
    signals.connect()
    app.steps["worker"].add(heartbeat.HeartbeatStep)
    liveness.connect(app)
    exporter.connect(app)
    worker_logs.connect_worker(settings.log_format)
    return app
