"""A broker or Redis that cannot be reached answers 503 fast, and never
leaves a slot held or a run `queued`."""

from __future__ import annotations

import logging
import time

import pytest

from devtools.redis_server import RedisServer
from tests.support.api import active_run_id, keys_of, run_of, trigger
from web import create_app
from worker.client.service import ENQUEUE_FAILED_ERROR
from worker.core.status import ErrorType, ReleaseReason, RunStatus
from worker.core.store import RunStore


def closed_port() -> int:
    from devtools.redis_server import free_port

    return free_port()  # bound and released: nothing listens there


def timed_post(client, path: str, **kwargs):
    started = time.monotonic()
    resp = client.post(path, **kwargs)
    return resp, time.monotonic() - started


def only_run(client, workflow_id: str) -> dict:
    runs = client.get(f"/api/workflows/{workflow_id}/test-runs").get_json()["runs"]
    assert len(runs) == 1
    return runs[0]


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_unreachable_broker_is_503_within_a_second_and_frees_the_slot(config, scheme):
    port = closed_port()
    url = (f"redis://:pw-secret@127.0.0.1:{port}/0" if scheme == "redis"
           else f"amqp://guest:pw-secret@127.0.0.1:{port}//")
    client = create_app(dict(config, CELERY_BROKER_URL=url)).test_client()
    for _ in range(3):  # the first call and the later ones (Celery's slow path) alike
        resp, took = timed_post(client, "/api/workflows/echo/test-runs", json={"input": {}})
        assert resp.status_code == 503, resp.get_json()
        assert resp.get_json()["error"] == "queue_unavailable"
        assert resp.get_json()["what"] == "broker"
        assert took < 1.0, f"503 took {took:.2f}s"
        assert active_run_id(client, "echo") is None
        assert_no_internals(resp.get_data(as_text=True), port)
    runs = client.get("/api/workflows/echo/test-runs").get_json()["runs"]
    assert len(runs) == 3
    for run in runs:
        assert run["status"] == RunStatus.FAILED
        assert run["error_type"] == ErrorType.ENQUEUE_FAILED
        assert run["release_reason"] == ReleaseReason.PUBLISH_FAILED
        assert run["error"] == ENQUEUE_FAILED_ERROR  # kept for days: no hosts, ports, text
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"]["broker"] == "unreachable"
    assert_no_internals(ready.get_data(as_text=True), port)


def assert_no_internals(body: str, port: int) -> None:
    """What a client sees names no host, port, password or driver error."""
    for secret in (str(port), "127.0.0.1", "pw-secret", "Error", "refused"):
        assert secret not in body, (secret, body)


def test_idempotent_retry_after_a_503_admits_the_run(config):
    """The first request could not enqueue; its key must not pin the failed run forever."""
    broker = RedisServer().start()
    try:
        client = create_app(dict(config, CELERY_BROKER_URL=broker.url)).test_client()
        broker.stop()
        headers = {"Idempotency-Key": "click-1"}
        first = client.post("/api/workflows/echo/test-runs", headers=headers)
        assert first.status_code == 503
        broker.start()
        retry = client.post("/api/workflows/echo/test-runs", headers=headers)
        assert retry.status_code == 202
        assert retry.get_json()["status"] == RunStatus.QUEUED
        again = client.post("/api/workflows/echo/test-runs", headers=headers)
        assert again.status_code == 200
        assert again.get_json()["run_id"] == retry.get_json()["run_id"]
    finally:
        broker.stop()


def test_broker_that_returns_admits_the_next_trigger(config):
    broker = RedisServer().start()
    try:
        client = create_app(dict(config, CELERY_BROKER_URL=broker.url)).test_client()
        broker.stop()
        resp, took = timed_post(client, "/api/workflows/echo/test-runs")
        assert resp.status_code == 503 and took < 1.0
        assert active_run_id(client, "echo") is None
        broker.start()
        run = trigger(client, "echo")
        assert run["status"] == RunStatus.QUEUED
        assert broker.client().llen(config["TEST_RUN_QUEUE"]) == 1  # really published
    finally:
        broker.stop()


def test_unreachable_redis_is_503_fast_with_nothing_taken(config):
    port = closed_port()
    client = create_app(dict(config, REDIS_URL=f"redis://127.0.0.1:{port}/0")).test_client()
    for _ in range(3):
        resp, took = timed_post(client, "/api/workflows/echo/test-runs")
        assert resp.status_code == 503 and resp.get_json()["error"] == "queue_unavailable"
        assert resp.get_json()["what"] == "redis"
        assert took < 1.0, f"503 took {took:.2f}s"
    resp = client.get("/api/test-runs/echo-" + "0" * 32)
    assert resp.status_code == 503


def test_redis_restarting_empty_then_back_serves_without_a_process_restart(config):
    server = RedisServer().start()
    try:
        client = create_app(dict(config, REDIS_URL=server.url)).test_client()
        trigger(client, "echo")
        server.stop()
        resp, took = timed_post(client, "/api/workflows/echo/test-runs")
        assert resp.status_code == 503 and took < 1.0
        server.start()
        assert trigger(client, "echo")["status"] == RunStatus.QUEUED
    finally:
        server.stop()


def test_enqueue_raising_during_construction_never_leaves_the_slot_held(config):
    # a broker URL whose transport does not exist: kombu raises while building the producer
    client = create_app(dict(config, CELERY_BROKER_URL="nosuchtransport://x")).test_client()
    resp = client.post("/api/workflows/echo/test-runs")
    assert resp.status_code == 503
    assert active_run_id(client, "echo") is None
    run = only_run(client, "echo")
    assert run["status"] == RunStatus.FAILED and run["error_type"] == ErrorType.ENQUEUE_FAILED


def test_enqueue_raising_anything_frees_the_slot(config, caplog):
    """Any exception out of the publish, even one that is not a connection error. Its text
    goes to the web's log with the run id, not to the client or the record."""
    caplog.set_level(logging.INFO, logger="worker.lifecycle")
    # the two-step path: the fused one has no publish after the slot is taken
    app = create_app(dict(config, TEST_RUN_FUSED_ADMISSION="false"))
    service = app.extensions["testruns"]

    class Boom(Exception):
        pass

    def explode(*args, **kwargs):
        raise Boom("serializer exploded")

    service.celery.send_task = explode  # our own object's method, not Celery or Redis
    resp = app.test_client().post("/api/workflows/echo/test-runs")
    assert resp.status_code == 503
    client = app.test_client()
    assert active_run_id(client, "echo") is None
    run = run_of(client, only_run(client, "echo")["run_id"])
    assert run["status"] == RunStatus.FAILED and run["error"] == ENQUEUE_FAILED_ERROR
    assert "serializer exploded" not in resp.get_data(as_text=True)
    logged = [r.getMessage() for r in caplog.records if run["run_id"] in r.getMessage()]
    assert any("serializer exploded" in line for line in logged), logged
    assert isinstance(service.store, RunStore)


def test_cancel_with_the_broker_down_still_cancels_and_frees(config):
    """The record is the source of truth: a revoke that cannot be sent does not matter."""
    broker = RedisServer().start()
    try:
        client = create_app(dict(config, CELERY_BROKER_URL=broker.url)).test_client()
        rid = trigger(client, "echo")["run_id"]
        broker.stop()
        resp, took = timed_post(client, f"/api/test-runs/{rid}/cancel")
        assert resp.status_code == 202 and resp.get_json()["status"] == RunStatus.CANCELLED
        assert took < 1.0
        assert active_run_id(client, "echo") is None
    finally:
        broker.stop()


def test_worker_warns_when_redis_may_evict_slot_keys(config, private_redis):
    from tests.support.procs import Worker, wait_for

    private_redis.client().config_set("maxmemory-policy", "allkeys-lru")
    worker = Worker(dict(config, REDIS_URL=private_redis.url)).wait_ready()
    try:
        wait_for(lambda: "maxmemory-policy is 'allkeys-lru'" in worker.log(), 10,
                 "the eviction warning")
    finally:
        worker.kill_group()


def test_an_error_redis_answers_is_a_logged_500_not_an_outage(idle_client, redis_client, config,
                                                              caplog):
    """Only a connection that fails or times out (or a server that cannot serve now) is an
    outage: an error Redis answers to our own command is a bug, a 500 with its traceback in the
    log, never a 503 `redis` (nor a count in `testrun_unavailable_total`)."""
    run = trigger(idle_client, "echo")
    logs = keys_of(config).logs("echo", run["run_id"])
    redis_client.set(logs, "not a list")  # the log page's LLEN now answers WRONGTYPE
    with caplog.at_level(logging.ERROR):
        resp = idle_client.get(f"/api/test-runs/{run['run_id']}/logs")
    assert resp.status_code == 500 and resp.get_json()["error"] == "internal_error"
    assert "WRONGTYPE" in caplog.text and "Traceback" in caplog.text
    assert "WRONGTYPE" not in resp.get_data(as_text=True)


def test_what_counts_as_an_outage():
    import redis

    from worker.core.errors import QueueUnavailable, unavailable_on_outage
    for outage in (redis.ConnectionError("refused"), redis.TimeoutError("slow"),
                   ConnectionResetError(), redis.exceptions.BusyLoadingError("loading"),
                   redis.exceptions.ReadOnlyError("READONLY"),
                   redis.exceptions.MasterDownError("MASTERDOWN")):
        with pytest.raises(QueueUnavailable):
            with unavailable_on_outage():
                raise outage
    for bug in (redis.ResponseError("ERR value is not an integer or out of range"),
                redis.exceptions.DataError("bad argument"), redis.exceptions.NoScriptError()):
        with pytest.raises(type(bug)):
            with unavailable_on_outage():
                raise bug
