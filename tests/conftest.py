"""Fixtures only (helpers are in tests/support/): a real Redis (REDIS_URL, set by `make
test`), real prefork workers, and apps on private key prefixes and queues.

Each test gets its own key prefix and queue, so tests never touch keys they did not write;
tests that stop or restart Redis start their own `redis-server` (`private_redis`)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from devtools.redis_server import RedisServer
from tests.support.api import DEFAULT_REDIS_URL, delete_prefix, make_config
from tests.support.procs import Worker
from web import create_app


@pytest.fixture(scope="session")
def redis_client() -> redis.Redis:
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis at {url} ({exc}); run the suite with `make test`")
    return client


@pytest.fixture(scope="session")
def session_config(redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    config = make_config()
    yield config
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture(scope="session")
def session_worker(session_config: dict[str, str]) -> Iterator[Worker]:
    """One prefork worker (2 children) shared by the tests that do not kill it."""
    worker = Worker(session_config, concurrency=2).wait_ready()
    yield worker
    worker.kill_group()


@pytest.fixture
def config(redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    """A private prefix and queue for one test (no worker consumes it unless it starts one)."""
    config = make_config()
    yield config
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


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
