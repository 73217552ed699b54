"""A RabbitMQ node list (kombu's failover form, `amqp://…;amqp://…`) with nodes that are down:
the web's fail-fast publish tries each node once and its readiness check fails over too, so a
dead node costs a trigger milliseconds, not a 503; a worker consumes through the next
node; with every node down a trigger answers 503 within a second and leaves nothing held.
Against the RabbitMQ at TEST_AMQP_URL, behind ports where nothing listens (the three-node
cluster, and a node killed under load, are tests/chaos/test_rabbit_cluster.py)."""

from __future__ import annotations

import time

import pytest

from devtools.redis_server import free_port
from tests.support import broker as brokers
from tests.support.api import active_run_id, expect_status, trigger, wait_terminal
from tests.support.procs import Worker
from web import create_app
from worker.core.status import ErrorType, RunStatus


@pytest.fixture
def amqp_config(config):
    if "amqp" not in brokers.enabled() or not brokers.answers(brokers.AMQP_URL):
        pytest.skip(f"no RabbitMQ at {brokers.safe_url(brokers.AMQP_URL)} (or TEST_BROKERS "
                    "leaves out amqp): the node-list tests are skipped")
    yield config
    brokers.delete_queue(dict(config, CELERY_BROKER_URL=brokers.AMQP_URL))


def dead_node() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}//"


def test_a_list_whose_first_nodes_are_down_publishes_and_runs_through_the_last(amqp_config):
    # two dead nodes first: a single retry (the fail-fast default for one broker) is not enough
    config = dict(amqp_config,
                  CELERY_BROKER_URL=f"{dead_node()};{dead_node()};{brokers.AMQP_URL}")
    client = create_app(config).test_client()
    ready = expect_status(client.get("/readyz"), 200)
    assert ready["checks"]["broker"] == "ok"
    started = time.monotonic()
    rid = trigger(client, "echo", {"via": "the third node"})["run_id"]
    took = time.monotonic() - started
    worker = Worker(config, concurrency=1).wait_ready()
    try:
        done = wait_terminal(client, rid)
        assert done["status"] == RunStatus.SUCCEEDED, done
        assert done["result"] == {"via": "the third node"}
    finally:
        worker.kill_group()
    print(f"admitted past two dead nodes in {took * 1000:.0f} ms")
    assert took < 1.0


def test_with_every_node_down_a_trigger_answers_503_within_a_second(amqp_config):
    config = dict(amqp_config, CELERY_BROKER_URL=";".join(dead_node() for _ in range(3)))
    client = create_app(config).test_client()
    started = time.monotonic()
    answer = expect_status(client.post("/api/workflows/echo/test-runs", json={"input": {}}),
                           503)
    took = time.monotonic() - started
    assert answer["error"] == "queue_unavailable"
    assert took < 1.0, f"503 after {took:.2f}s"
    assert active_run_id(client, "echo") is None  # the slot it took was given back
    runs = expect_status(client.get("/api/workflows/echo/test-runs"), 200)["runs"]
    assert [(r["status"], r["error_type"]) for r in runs] == \
        [(RunStatus.FAILED, ErrorType.ENQUEUE_FAILED)]
    not_ready = expect_status(client.get("/readyz"), 503)
    assert not_ready["checks"]["broker"] == "unreachable"
