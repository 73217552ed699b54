"""Every setting of the service, read from the environment in one place.

Both processes (web and worker) build their settings here, so a value cannot mean one thing to
the producer and another to the consumer. Each field documents its environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_WORKFLOW_MODULES = ("worker.workflows.examples",)
REDIS_SCHEMES = ("redis", "rediss", "unix")


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    #: REDIS_URL — broker and result backend unless overridden; slots and run records live here.
    redis_url: str = DEFAULT_REDIS_URL
    #: CELERY_BROKER_URL — the broker (Redis or RabbitMQ `amqp://`); default REDIS_URL.
    broker_url: str = DEFAULT_REDIS_URL
    #: CELERY_RESULT_BACKEND — must be Redis: slots and run records are kept in it.
    result_backend: str = DEFAULT_REDIS_URL
    #: TEST_RUN_TIME_LIMIT — hard limit in seconds; the pool child is killed when it passes.
    time_limit: float = 600.0
    #: TEST_RUN_SOFT_TIME_LIMIT — raises SoftTimeLimitExceeded inside the run; default a little
    #: below the hard limit, so an ordinary timeout ends inside the child with a clean record.
    soft_time_limit: float = 590.0
    #: TEST_RUN_QUEUE_TIMEOUT — seconds a run may wait for a worker before it expires.
    queue_timeout: float = 300.0
    #: TEST_RUN_LEASE_GRACE — added to the queued lease (queue timeout + grace).
    lease_grace: float = 60.0
    #: TEST_RUN_HEARTBEAT_TTL — lease of a running run's slot, renewed every third of it by the
    #: worker's main process; a dead worker frees its slots within this many seconds.
    heartbeat_ttl: float = 30.0
    #: TEST_RUN_RETENTION — seconds run records (and their logs) are kept.
    retention: int = 7 * 24 * 3600
    #: WORKFLOW_MODULES — comma-separated modules whose import registers workflows.
    workflow_modules: tuple[str, ...] = DEFAULT_WORKFLOW_MODULES
    #: API_TOKEN — when set, every /api/ request needs `Authorization: Bearer <token>`.
    api_token: str | None = None
    #: TEST_RUN_QUEUE — the Celery queue test runs are published to and consumed from.
    queue: str = "testruns"
    #: TEST_RUN_KEY_PREFIX — prefix of every Redis key this service writes.
    key_prefix: str = "testrun"
    #: TEST_RUN_IO_TIMEOUT — seconds any Redis or broker call on the request path may take
    #: before the request answers 503 (Celery's defaults take ~19 s).
    io_timeout: float = 0.5
    #: TEST_RUN_MAX_LOG_LINES — lines kept per run's log; older lines are dropped.
    max_log_lines: int = 1000

    @property
    def queued_lease(self) -> float:
        return self.queue_timeout + self.lease_grace

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_ttl / 3.0

    @property
    def visibility_timeout(self) -> int:
        """Redis transport: an unacked message is redelivered after this many seconds.

        Runs are acked early (when a pool process starts them) and workers take a message only
        when a process is free, so a message is unacked for milliseconds — unless its worker
        died in that window. Half the queue timeout brings such a stranded run back while it
        may still start; a redelivery of a run that did start is refused by the task's start
        check, so a short timeout can never make a run execute twice."""
        return max(5, int(self.queue_timeout / 2))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None,
                 overrides: Mapping[str, object] | None = None) -> Settings:
        """Layer defaults → environment → overrides (tests pass overrides by variable name)."""
        env: dict[str, str] = dict(os.environ if environ is None else environ)
        for key, value in (overrides or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = str(value)

        def num(name: str, default: float, kind: type = float) -> float:
            """A positive number (`kind` int for counts); the default when unset."""
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                what = "a whole number" if kind is int else "a number of seconds"
                raise SettingsError(name, f"expected {what}, got {raw!r}") from None
            if value <= 0:
                raise SettingsError(name, f"must be greater than 0, got {raw}")
            return value

        redis_url = env.get("REDIS_URL", "").strip() or DEFAULT_REDIS_URL
        broker_url = env.get("CELERY_BROKER_URL", "").strip() or redis_url
        backend = env.get("CELERY_RESULT_BACKEND", "").strip() or redis_url
        for name, url in (("REDIS_URL", redis_url), ("CELERY_RESULT_BACKEND", backend)):
            if urlsplit(url).scheme not in REDIS_SCHEMES:
                raise SettingsError(
                    name,
                    f"must be a Redis URL (redis://, rediss:// or unix://), got {url!r}: "
                    "slots and run records live in the result backend, which must be Redis",
                )

        time_limit = num("TEST_RUN_TIME_LIMIT", 600.0)
        soft_default = time_limit - min(10.0, time_limit * 0.2)
        soft = num("TEST_RUN_SOFT_TIME_LIMIT", soft_default)
        if soft >= time_limit:
            raise SettingsError(
                "TEST_RUN_SOFT_TIME_LIMIT",
                f"must be below TEST_RUN_TIME_LIMIT ({time_limit:g}), got {soft:g}",
            )
        modules = tuple(
            m.strip() for m in env.get("WORKFLOW_MODULES", "").split(",") if m.strip()
        ) or DEFAULT_WORKFLOW_MODULES
        return cls(
            redis_url=redis_url,
            broker_url=broker_url,
            result_backend=backend,
            time_limit=time_limit,
            soft_time_limit=soft,
            queue_timeout=num("TEST_RUN_QUEUE_TIMEOUT", 300.0),
            lease_grace=num("TEST_RUN_LEASE_GRACE", 60.0),
            heartbeat_ttl=num("TEST_RUN_HEARTBEAT_TTL", 30.0),
            retention=int(num("TEST_RUN_RETENTION", 7 * 24 * 3600, int)),
            workflow_modules=modules,
            api_token=env.get("API_TOKEN") or None,
            queue=env.get("TEST_RUN_QUEUE", "").strip() or "testruns",
            key_prefix=env.get("TEST_RUN_KEY_PREFIX", "").strip() or "testrun",
            io_timeout=num("TEST_RUN_IO_TIMEOUT", 0.5),
            max_log_lines=int(num("TEST_RUN_MAX_LOG_LINES", 1000, int)),
        )
