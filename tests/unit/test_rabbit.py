"""RabbitMQ settings: the delivery policy each broker gets, a `;`-separated node list, the queue
type, and the web's fail-fast producer on a list (each node tried once, publisher confirms).
What they do against real nodes is tested in tests/integration/test_broker_list.py and
tests/chaos/test_rabbit_cluster.py."""

from __future__ import annotations

import pytest

from worker.core import rabbit
from worker.core.celery_app import celery_config
from worker.core.errors import SettingsError
from worker.core.settings import Settings

NODES = "amqp://u:s3cret@h1:5672//;amqp://u:s3cret@h2:5672//;amqp://u:s3cret@h3:5672//"


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


def test_a_list_is_split_and_each_node_tried_once_by_the_web():
    assert rabbit.urls(NODES + ";") == NODES.split(";")
    assert rabbit.is_amqp(NODES) and not rabbit.is_amqp("redis://h//")
    transport = config_for(CELERY_BROKER_URL=NODES)["broker_transport_options"]
    assert isinstance(transport, dict)
    assert transport["max_retries"] == 2  # three attempts: h1, h2, h3
    assert transport["connect_retries_timeout"] == 1.5  # 0.5 s each
    assert transport["confirm_publish"] is True  # a 202 means RabbitMQ has the message
    single = config_for(CELERY_BROKER_URL="amqp://h1//")["broker_transport_options"]
    assert isinstance(single, dict) and single["max_retries"] == 1
    assert single["connect_retries_timeout"] == 0.5
    redis = config_for()["broker_transport_options"]
    assert isinstance(redis, dict) and "confirm_publish" not in redis


def test_the_worker_keeps_kombus_patient_reconnects_and_no_confirms():
    worker = celery_config(Settings.from_env({"CELERY_BROKER_URL": NODES}))
    transport = worker["broker_transport_options"]
    assert isinstance(transport, dict)
    assert "max_retries" not in transport and "confirm_publish" not in transport


def test_the_queue_type_is_celerys_default_queue_type():
    assert config_for(CELERY_BROKER_URL=NODES)["task_default_queue_type"] == "classic"
    quorum = config_for(CELERY_BROKER_URL=NODES, TEST_RUN_QUEUE_TYPE="Quorum")
    assert quorum["task_default_queue_type"] == "quorum"


@pytest.mark.parametrize("env, variable", [
    ({"TEST_RUN_QUEUE_TYPE": "quorum"}, "TEST_RUN_QUEUE_TYPE"),  # a Redis broker
    ({"CELERY_BROKER_URL": NODES, "TEST_RUN_QUEUE_TYPE": "stream"}, "TEST_RUN_QUEUE_TYPE"),
    ({"CELERY_BROKER_URL": NODES + ";redis://:s3cret@h4:6379/0"}, "CELERY_BROKER_URL"),
])
def test_bad_broker_settings_are_refused_without_the_password(env, variable):
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert err.value.variable == variable and "s3cret" not in str(err.value)
