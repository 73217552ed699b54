"""The brokers the lifecycle and chaos suites run against (`broker_matrix` tests):

- `redis`: the tracking Redis is the broker too (the default deployment);
- `redis-broker`: the broker is a Redis of its own (a private redis-server for the session);
- `amqp`: RabbitMQ, tracking stays in Redis.

TEST_BROKERS (comma-separated) chooses which run; a broker that does not answer is skipped
with a message saying so, never silently."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

import redis
from kombu import Connection

ALL = ("redis", "redis-broker", "amqp")
DEFAULT = ("redis", "redis-broker")
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def enabled() -> tuple[str, ...]:
    chosen = tuple(b.strip() for b in os.environ.get("TEST_BROKERS", "").split(",") if b.strip())
    unknown = set(chosen) - set(ALL)
    if unknown:
        raise ValueError(f"TEST_BROKERS: unknown broker(s) {sorted(unknown)}; known: {ALL}")
    return chosen or DEFAULT


def answers(url: str, timeout: float = 0.5) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672),
                                      timeout=timeout):
            return True
    except OSError:
        return False


def queued_messages(config: dict[str, str]) -> int:
    """Messages waiting in the test's queue, on whichever broker the config names."""
    url = config.get("CELERY_BROKER_URL") or config["REDIS_URL"]
    queue = config["TEST_RUN_QUEUE"]
    if url.startswith(("redis", "unix")):
        return int(redis.Redis.from_url(url).llen(queue))
    with Connection(url) as conn:
        return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
