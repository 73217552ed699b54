"""Fixtures only (helpers are in tests/support/): a real Redis (REDIS_URL, set by `make
test`), real prefork workers, and apps on private key prefixes and queues.

Each test gets its own key prefix and queue, so tests never touch keys they did not write;
tests that stop or restart Redis start their own `redis-server` (`private_redis`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from devtools.redis_server import RedisServer
from tests.support import broker as brokers
from tests.support import redis_cluster
from tests.support import tracking as tracking_store
from tests.support.api import DEFAULT_REDIS_URL, delete_prefix, make_config
from tests.support.procs import Front, Gunicorn, Worker
from web import create_app


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`broker_matrix` tests run once per enabled broker (tests/support/broker.py)."""
    if "broker" in metafunc.fixturenames and metafunc.definition.get_closest_marker(
            "broker_matrix"):
        metafunc.parametrize("broker", brokers.enabled(), indirect=True, scope="session")


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Say plainly which brokers the matrix runs, and why one is skipped."""
    from tests.support import rabbit_cluster

    cluster = ("3-node RabbitMQ cluster: "
               + ("SKIPPED (TEST_BROKERS leaves out amqp)" if "amqp" not in brokers.enabled()
                  else "started by tests/chaos/test_rabbit_cluster.py" if rabbit_cluster.installed()
                  else "SKIPPED (no rabbitmq-server installed)"))
    return [brokers.header(), cluster, tracking_store.header()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The amqp leg runs brokers.AMQP_SUBSET unless TEST_AMQP_FULL=1 (`make soak`)."""
    if brokers.amqp_full():
        return
    dropped = [item for item in items
               if getattr(getattr(item, "callspec", None), "params", {}).get("broker") == "amqp"
               and getattr(item, "originalname", item.name) not in brokers.AMQP_SUBSET]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture(scope="session")
def broker(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Settings that pick the broker: none for the tracking Redis itself (the default)."""
    kind = getattr(request, "param", "redis")
    if kind == "redis":
        yield {}
    elif kind == "redis-broker":
        server = RedisServer().start()
        yield {"CELERY_BROKER_URL": server.url}
        server.stop()
    else:
        if not brokers.answers(brokers.AMQP_URL):
            pytest.skip(f"RabbitMQ does not answer at {brokers.safe_url(brokers.AMQP_URL)}: "
                        "amqp runs skipped")
        yield {"CELERY_BROKER_URL": brokers.AMQP_URL}


@pytest.fixture(scope="session", autouse=True)
def tracking_cluster() -> Iterator[str | None]:
    """TEST_TRACKING=cluster: this test process's Redis Cluster, which every `make_config`
    then tracks on (tests/support/tracking.py); its URL, or None on the single Redis."""
    if not tracking_store.on_cluster():
        yield None
        return
    for cluster in redis_cluster.running():  # skips, saying why, where none can start
        tracking_store.started(cluster.url())
        try:
            yield cluster.url()
        finally:
            tracking_store.started(None)


@pytest.fixture(scope="session")
def single_redis() -> redis.Redis:
    """The suite's single Redis (REDIS_URL): the broker and result backend in every tracking
    mode, and tracking too unless TEST_TRACKING=cluster."""
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"no Redis at {url} ({exc}); run the suite with `make test`")
    return client


@pytest.fixture(scope="session")
def redis_client(single_redis: redis.Redis, tracking_cluster: str | None) -> redis.Redis:
    """Where the tests read tracking keys and the test bodies' log: the single Redis, or a
    cluster client on the session's Redis Cluster (TEST_TRACKING=cluster)."""
    if tracking_cluster is None:
        return single_redis
    from worker.core.cluster import cluster_client

    client: Any = cluster_client(tracking_cluster, decode_responses=True, socket_timeout=5)
    return client


def forget(config: dict[str, str], tracking: redis.Redis, single: redis.Redis) -> None:
    """Every key a test's prefix wrote: its tracking keys, and its queues on the broker (the
    single Redis, when tracking is on a cluster; RabbitMQ's durable queues)."""
    delete_prefix(tracking, config["TEST_RUN_KEY_PREFIX"])
    if tracking is not single:
        delete_prefix(single, config["TEST_RUN_KEY_PREFIX"])
    brokers.delete_queue(config)


@pytest.fixture(scope="session")
def session_config(redis_client: redis.Redis, single_redis: redis.Redis,
                   broker: dict[str, str]) -> Iterator[dict[str, str]]:
    config = make_config(**broker)
    yield config
    forget(config, redis_client, single_redis)


@pytest.fixture(scope="session")
def session_worker(session_config: dict[str, str]) -> Iterator[Worker]:
    """One prefork worker (2 children) shared by the tests that do not kill it."""
    worker = Worker(session_config, concurrency=2).wait_ready()
    yield worker
    worker.kill_group()


@pytest.fixture
def config(redis_client: redis.Redis, single_redis: redis.Redis,
           broker: dict[str, str]) -> Iterator[dict[str, str]]:
    """A private prefix and queue for one test (no worker consumes it unless it starts one),
    on the broker the test runs against."""
    config = make_config(**broker)
    yield config
    forget(config, redis_client, single_redis)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop, restart or flush."""
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def restartable_tracking() -> Iterator[tracking_store.ServerTracking
                                       | tracking_store.ClusterTracking]:
    """Tracking of this test's own, which it may restart empty: a redis-server (REDIS_URL), or
    with TEST_TRACKING=cluster a Redis Cluster (TEST_RUN_TRACKING_URL) whose every node
    restarts with no data. Its `settings()` go over the test's config."""
    yield from tracking_store.restartable()


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


@pytest.fixture(scope="module")
def page_stack(redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    """gunicorn and a prefork worker for the page's browser tests, with a hard limit long
    enough to watch `hang` run and cancel it. Yields the config, plus `URL`."""
    config = make_config(TEST_RUN_TIME_LIMIT="30", TEST_RUN_SOFT_TIME_LIMIT="25",
                         TEST_RUN_STREAM_KEEPALIVE="2")
    worker = Worker(config, concurrency=2).wait_ready()
    server = Gunicorn(config, workers=1, threads=8).wait_ready()
    yield dict(config, URL=server.url)
    server.kill_group()
    worker.kill_group()
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's chromium, driven headless by Playwright (never `playwright install`)."""
    from tests.support.browser import launch

    with launch() as browser:
        yield browser


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1000, "height": 1400})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def contract_server(redis_client: redis.Redis) -> Iterator[str]:
    """The web as deployed (the Procfile's front: nginx before gunicorn) with no worker behind
    it (runs stay queued), for the schemathesis run; yields its URL."""
    # `?wait=` at most half a second: a fuzzed wait on a live run holds the request that long
    config = make_config(TRIGGER_RATE_LIMIT="1000/minute", TEST_RUN_MAX_WAIT="0.5")
    server = Front(config).wait_ready()
    yield server.url
    server.stop()
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture(scope="module")
def api_schema(contract_server: str) -> Any:
    import schemathesis

    schema = schemathesis.openapi.from_url(contract_server + "/openapi.json")
    # gunicorn refuses a request line over 4,094 bytes with 414 before the app sees it (the
    # document declares it): a rejection like any other 4xx
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "414"]
    return schema
