"""RabbitMQ settings: the delivery policy each broker gets (what it does against real workers is
tested in tests/integration/test_delivery.py)."""

from __future__ import annotations

from worker.core.celery_app import celery_config
from worker.core.settings import Settings

NODES = "amqp://u:s3cret@h1:5672//"


def config_for(**env: str) -> dict[str, object]:
    return celery_config(Settings.from_env(env), fail_fast=True)


def test_rabbitmq_acks_late_with_one_run_per_process_and_redis_acks_early():
    amqp, redis = config_for(CELERY_BROKER_URL=NODES), config_for()
    assert (amqp["task_acks_late"], amqp["worker_prefetch_multiplier"]) == (True, 1)
    # every ending is acked, never requeued: a run is never re-run
    assert amqp["task_acks_on_failure_or_timeout"] is True
    assert amqp["task_reject_on_worker_lost"] is False
    # a lost broker connection leaves running runs alone (worker/runner/consumer.py)
    assert amqp["worker_cancel_long_running_tasks_on_connection_loss"] is False
    assert amqp["worker_enable_prefetch_count_reduction"] is False
    assert "worker_disable_prefetch" not in amqp  # Redis-only: Celery would warn
    assert (redis["task_acks_late"], redis["worker_disable_prefetch"]) == (False, True)
    assert redis["worker_cancel_long_running_tasks_on_connection_loss"] is True
