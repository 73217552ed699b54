"""Shared fixtures: a real Redis (REDIS_URL, set by `make test`), real prefork workers.

Each test session gets its own key prefix and queue, so tests never touch keys they did not
write; tests that stop or restart Redis start their own `redis-server` (support.procs)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from devtools.redis_server import RedisServer
from tests.support.procs import TEST_WORKFLOWS, Worker, wait_for
from tests.support.workflows import body_log_key
from web import create_app

TERMINAL = {"succeeded", "failed", "timed_out", "cancelled", "expired", "lost"}


def ts(iso: str | None) -> float | None:
    """Seconds since the epoch of an API timestamp (ISO-8601, `Z`), or None."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() if iso else None


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def test_config(**overrides: Any) -> dict[str, str]:
    """Short limits so time-limit paths finish in seconds; a private prefix and queue."""
    name = unique("t")
    config = {
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "TEST_RUN_KEY_PREFIX": name,
        "TEST_RUN_QUEUE": name,
        "TEST_RUN_TIME_LIMIT": "3",
        "TEST_RUN_SOFT_TIME_LIMIT": "2",
        "TEST_RUN_QUEUE_TIMEOUT": "30",
        "TEST_RUN_LEASE_GRACE": "2",
        "TEST_RUN_HEARTBEAT_TTL": "3",
        "WORKFLOW_MODULES": TEST_WORKFLOWS,
    }
    config.update({k: str(v) for k, v in overrides.items()})
    return config


test_config.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis at {url} ({exc}); run the suite with `make test`")
    return client


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for kombu in (f"_kombu.binding.{prefix}*", f"_kombu.binding_permanent.{prefix}*"):
        keys += list(client.scan_iter(match=kombu, count=1000))
    keys += [prefix]
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])


@pytest.fixture(scope="session")
def session_config(redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    config = test_config()
    yield config
    _delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture(scope="session")
def session_worker(session_config: dict[str, str]) -> Iterator[Worker]:
    """One prefork worker (2 children) shared by the tests that do not kill it."""
    worker = Worker(session_config, concurrency=2).wait_ready()
    yield worker
    worker.kill_group()


@pytest.fixture
def config(redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    """A private prefix and queue for one test (no worker consumes it unless it starts one)."""
    config = test_config()
    yield config
    _delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop, restart or flush."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def app(session_config: dict[str, str], session_worker: Worker) -> Flask:
    return create_app(session_config)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def idle_app(config: dict[str, str]) -> Flask:
    """An app whose queue no worker consumes: runs stay queued until the test acts."""
    return create_app(config)


@pytest.fixture
def idle_client(idle_app: Flask) -> FlaskClient:
    return idle_app.test_client()


def trigger(client: FlaskClient, workflow_id: str, input: dict | None = None,
            expect: int = 202, **kwargs: Any) -> dict[str, Any]:
    body = {"input": input} if input is not None else None
    resp = client.post(f"/api/workflows/{workflow_id}/test-runs", json=body, **kwargs)
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def run_of(client: FlaskClient, run_id: str) -> dict[str, Any]:
    resp = client.get(f"/api/test-runs/{run_id}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def wait_status(client: FlaskClient, run_id: str, statuses: set[str] | str,
                timeout: float = 15) -> dict[str, Any]:
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    return wait_for(lambda: (lambda r: r if r["status"] in wanted else None)(
        run_of(client, run_id)), timeout, f"run {run_id} to reach {sorted(wanted)}")


def wait_terminal(client: FlaskClient, run_id: str, timeout: float = 15) -> dict[str, Any]:
    return wait_status(client, run_id, TERMINAL, timeout)


def active_run_id(client: FlaskClient, workflow_id: str) -> str | None:
    return client.get(f"/api/workflows/{workflow_id}").get_json()["active_run_id"]


def body_events(redis_client: redis.Redis, config: dict[str, str],
                run_id: str | None = None) -> list[dict[str, Any]]:
    raw = redis_client.lrange(body_log_key(config["TEST_RUN_KEY_PREFIX"]), 0, -1)
    events = [json.loads(x) for x in raw]
    return [e for e in events if run_id is None or e["run_id"] == run_id]
