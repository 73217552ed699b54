"""The Celery app as a worker runs it: the shared app (worker/core/celery_app.py) plus the
task and the webhook task, its signal handlers, the worker's bootsteps (heartbeat, liveness,
metrics exporter) and its log set-up. `celery -A worker` finds it through `worker.celery`."""

from __future__ import annotations

from typing import cast

from ..core import webhooks
from ..core.celery_app import TestRunCelery, create_celery
from ..core.settings import Settings
from . import control, exporter, heartbeat, liveness, signals, tasks, worker_logs
from .stops import Stops


class WorkerCelery(TestRunCelery):
    """The worker's app: also the one record of why it stopped a run's process."""

    stops: Stops
    webhooks: webhooks.Webhooks


def create_worker_app(settings: Settings | None = None) -> WorkerCelery:
    settings = settings or Settings.from_env()
    app = cast(WorkerCelery, create_celery(settings, cls=WorkerCelery))
    app.stops = Stops(app.store)
    app.webhooks = webhooks.install(app)  # this process's endings are handed over through it
    tasks.register(app)
    control.register()
    signals.connect()
    app.steps["worker"].add(heartbeat.HeartbeatStep)
    liveness.connect(app)
    exporter.connect(app)
    worker_logs.connect_worker(settings.log_format)
    return app
