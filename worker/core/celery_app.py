"""The Celery app both sides build from Settings: its configuration, the run store it
carries, and the names the two sides agree on (the task, the stop command).

The web and the CLI use this app only to publish runs and control messages; the worker builds
the same app and adds what runs inside it (worker/runner/app.py): the task, its signal
handlers and the worker's bootsteps. So the caller's side never imports a worker's code.
"""

from __future__ import annotations

from celery import Celery

from .. import workflows
from . import rabbit, sentinel
from .settings import Settings
from .store import RunStore

#: The Celery task name of a test run (its messages, routes and signal senders carry it).
TASK_NAME = "testruns.run"
#: The Celery task that makes one webhook attempt (worker/runner/delivery.py), on WEBHOOK_QUEUE.
WEBHOOK_TASK = "testruns.deliver_webhook"
#: The remote-control command that stops a run's process (sent by the caller's side,
#: executed by the worker that runs it).
STOP_COMMAND = "stop_test_run"


class TestRunCelery(Celery):
    """A Celery app that carries the settings and the run store its tasks and signals use."""

    __test__ = False  # not a pytest class
    settings: Settings
    store: RunStore


def celery_config(settings: Settings, *, fail_fast: bool = False) -> dict[str, object]:
    """`fail_fast` is for producers on a request path (the web): one immediate reconnect, then
    an error, instead of kombu's default ~2 s of retries. Workers keep their patient defaults."""
    transport: dict[str, object] = {
        "visibility_timeout": settings.visibility_timeout,
        # sweep for stranded messages every few seconds instead of every ~100 s
        "unacked_restore_interval": min(5, settings.visibility_timeout),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": settings.io_timeout,
    }
    if fail_fast:
        # (a RabbitMQ list: each node tried once, each within the connect timeout)
        transport.update(max_retries=rabbit.failover_retries(settings.broker_url),
                         interval_start=0, interval_step=0.1, interval_max=0.1,
                         connect_retries_timeout=settings.io_timeout
                         * rabbit.nodes(settings.broker_url))
        if settings.broker_url.startswith(("redis", "rediss", "unix", sentinel.SCHEME)):
            # a half-open broker connection must not hang a request thread (kombu's default
            # is no timeout); the web only publishes, so no blocking BRPOP is cut short
            transport["socket_timeout"] = max(1.0, settings.io_timeout * 2)
    backend_transport: dict[str, object] = {}
    read_timeout = max(1.0, settings.io_timeout * 2)
    if fail_fast and rabbit.is_amqp(settings.broker_url):
        # a 202 means RabbitMQ took the message (a quorum queue: a majority of its nodes): a
        # message written to a node as it dies answers 503 instead of vanishing unseen
        transport["confirm_publish"] = True
    if sentinel.is_sentinel(settings.broker_url):
        transport.update(sentinel.transport_options(
            settings.sentinel_master, settings.sentinel_password, settings.io_timeout,
            read_timeout))
    if sentinel.is_sentinel(settings.result_backend):
        backend_transport.update(sentinel.transport_options(
            settings.sentinel_master, settings.sentinel_password, settings.io_timeout,
            read_timeout))
    return {
        "broker_url": settings.broker_url,
        "result_backend": settings.result_backend,
        # JSON only: a pickle payload on the broker would be code execution in the worker
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # our run record is the source of truth: no result meta, and no SUBSCRIBE per publish
        "task_ignore_result": True,
        "task_default_queue": settings.queue,
        "task_routes": {TASK_NAME: {"queue": settings.queue},
                        WEBHOOK_TASK: {"queue": settings.webhook_queue}},
        "task_time_limit": settings.time_limit,
        "task_soft_time_limit": settings.soft_time_limit,
        **delivery_options(settings),
        # Flower sees runs once a worker receives them; a task-sent event would cost every
        # admission a third Redis command (PUBLISH), so it is off
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        # fail fast on the request path: a down broker answers 503 in well under a second
        "task_publish_retry": False,
        "broker_connection_timeout": settings.io_timeout,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": transport,
        "result_backend_transport_options": backend_transport,
        "worker_hijack_root_logger": True,
        "worker_redirect_stdouts": False,
    }


def delivery_options(settings: Settings) -> dict[str, object]:
    """When a worker takes a message and when it acks it: a run must not sit reserved by a busy
    worker while another is idle, and is never re-run (docs/guarantees.md#delivery-policy)."""
    if rabbit.is_amqp(settings.broker_url):
        return rabbit.delivery_options(settings.queue_type)  # late ack, prefetch 1 per process
    return {
        # test runs are never re-run: ack early (when a pool process starts it), one at a time
        "task_acks_late": False,
        "task_reject_on_worker_lost": False,
        "worker_prefetch_multiplier": 1,
        # take a message only when a pool process is free (or die with it, unacked until
        # visibility_timeout) — Celery applies this to Redis brokers only
        "worker_disable_prefetch": True,
        # Celery 6's default, stated now: it only cancels acks_late tasks (none on Redis, so a
        # broker outage never stops a running run) and it silences a warning on every reconnect
        "worker_cancel_long_running_tasks_on_connection_loss": True,
    }


def create_celery(settings: Settings | None = None, *, fail_fast: bool = False,
                  cls: type[TestRunCelery] = TestRunCelery) -> TestRunCelery:
    """The app as a producer (the web, the CLI) needs it: configured, with its run store and
    the workflows loaded; no task or worker code registered (worker/runner/app.py adds them
    to an app of its own class)."""
    settings = settings or Settings.from_env()
    workflows.load(settings.workflow_modules)
    app = cls("worker", set_as_current=False)
    app.config_from_object(celery_config(settings, fail_fast=fail_fast))
    app.settings = settings
    app.store = RunStore(settings)
    return app
