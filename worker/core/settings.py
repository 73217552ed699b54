"""Every setting of the service, read from the environment in one place.
Over 300 lines because each setting's documentation lives beside it (docs/configuration.md is
generated from it), and one place for every setting is the point.

Both processes (web and worker) build their settings here, so a value cannot mean one thing to
the producer and another to the consumer. Each field documents its environment variable in
the `#:` comment above it: docs/configuration.md is generated from those comments
(`make docs`, devtools/configuration_doc.py), so a new setting is documented where it is added.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

import limits
from limits import RateLimitItem

from .cluster import is_cluster
from .cluster import parse as cluster_parse
from .errors import SettingsError
from .keys import PREFIX_FORBIDDEN
from .rabbit import QUEUE_TYPES, is_amqp, urls
from .scopes import Token, parse_tokens
from .sentinel import is_sentinel, safe_url, sentinels_of

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
REDIS_SCHEMES = ("redis", "rediss", "unix", "sentinel")
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}
#: the soft limit's default: this much below the hard limit, at most 20 % of it
SOFT_LIMIT_MARGIN = 10.0
#: TEST_RUN_MAX_INPUT_DEPTH's ceiling: a run is read back as a model whose serializer stops at
#: 255 levels, and the run's own answer wraps its input and result in a few more
MAX_JSON_DEPTH = 200
#: LOG_FORMAT's values
LOG_FORMATS = ("text", "json")


def _env(variable: str, default: Any, *, repr: bool = True, shown: str | None = None) -> Any:
    """A field read from `variable`; its default is written here and nowhere else.

    `shown` is how docs/configuration.md states a default that from_env computes (the broker
    defaults to REDIS_URL, not to the built-in URL); it changes nothing at run time."""
    metadata = {"env": variable} | ({"shown": shown} if shown else {})
    return field(default=default, metadata=metadata, repr=repr)


@dataclass(frozen=True)
class Settings:
    """Each field names its environment variable; numbers must be greater than 0."""

    #: REDIS_URL — tracking (slots, run records), broker and result backend unless overridden.
    redis_url: str = _env("REDIS_URL", DEFAULT_REDIS_URL)
    #: TEST_RUN_TRACKING_URL — where slots, run records, logs and event streams live: a Redis
    #: (`redis://`, `rediss://`, `unix://`, `sentinel://`) or a Redis Cluster,
    #: `redis+cluster://[:password@]host:port[,host:port…]` (`rediss+cluster://` for TLS; a few
    #: nodes as seeds). On a cluster the broker must be another server (RabbitMQ, or a Redis of
    #: its own: kombu has no cluster transport) and admission takes the two-step path (see
    #: [scaling.md](scaling.md#redis-cluster-tracking)).
    tracking_url: str = _env("TEST_RUN_TRACKING_URL", DEFAULT_REDIS_URL, shown="`REDIS_URL`")
    #: CELERY_BROKER_URL — the broker; RabbitMQ (`amqp://…`) works too, tracking stays in Redis.
    #: A RabbitMQ cluster is kombu's failover list, `amqp://u:pw@h1:5672//;amqp://u:pw@h2:5672//;…`
    #: (every URL `amqp://`/`amqps://`): a connection that fails moves on to the next node, for
    #: the web's publishes, its readiness check and the workers alike (see
    #: [scaling.md](scaling.md#the-broker-rabbitmq)).
    broker_url: str = _env("CELERY_BROKER_URL", DEFAULT_REDIS_URL, shown="`REDIS_URL`")
    #: CELERY_RESULT_BACKEND — must be Redis (`redis://`, `rediss://`, `unix://`, `sentinel://`;
    #: not a cluster): Celery keeps revoked runs' results in it; anything else is refused at
    #: start with a message naming the variable. Independent of TEST_RUN_TRACKING_URL.
    result_backend: str = _env("CELERY_RESULT_BACKEND", DEFAULT_REDIS_URL, shown="`REDIS_URL`")
    #: REDIS_SENTINEL_MASTER — the master's name at the sentinels; needed (and used) only when
    #: `REDIS_URL`, `CELERY_BROKER_URL` or `CELERY_RESULT_BACKEND` is Celery's Sentinel form
    #: `sentinel://:pw@host:26379/0;sentinel://:pw@host:26380/0;…` (the password in it is the
    #: master's; passwords are masked in every `;`-separated part wherever a URL is printed).
    #: The tracking client, the broker and the result backend then follow the master through a
    #: failover, no restart needed (see [Redis failover](operations.md#redis-failover-sentinel)).
    sentinel_master: str | None = _env("REDIS_SENTINEL_MASTER", None)
    #: REDIS_SENTINEL_PASSWORD — the sentinels' own password (`requirepass` in sentinel.conf),
    #: when they have one; the master's password goes in the URL. Never logged, never shown in
    #: a repr.
    sentinel_password: str | None = _env("REDIS_SENTINEL_PASSWORD", None, repr=False)
    #: TEST_RUN_TIME_LIMIT — hard limit in seconds; the pool child is killed when it passes.
    time_limit: float = _env("TEST_RUN_TIME_LIMIT", 600.0)
    #: TEST_RUN_SOFT_TIME_LIMIT — raises `SoftTimeLimitExceeded` inside the run, so an ordinary
    #: timeout ends cleanly: inside the child, with a clean record.
    soft_time_limit: float = _env("TEST_RUN_SOFT_TIME_LIMIT", 600.0 - SOFT_LIMIT_MARGIN,
                                  shown=f"hard limit − min({SOFT_LIMIT_MARGIN:g} s, 20 %)")
    #: TEST_RUN_QUEUE_TIMEOUT — seconds a run may wait for a worker before it ends `expired`.
    queue_timeout: float = _env("TEST_RUN_QUEUE_TIMEOUT", 300.0)
    #: TEST_RUN_PENDING_TIMEOUT — seconds a pending run (`on_conflict=queue`) may wait for the
    #: slot before it ends `expired` (`pending_timeout`); once promoted, its queue timeout
    #: counts from its promotion.
    pending_timeout: float = _env("TEST_RUN_PENDING_TIMEOUT", 900.0)
    #: TEST_RUN_LEASE_GRACE — added to the queued lease (queue timeout + grace).
    lease_grace: float = _env("TEST_RUN_LEASE_GRACE", 60.0)
    #: TEST_RUN_HEARTBEAT_TTL — lease of a running run's slot, renewed every third of it by the
    #: worker's main process; a dead worker frees its slots within this many seconds.
    heartbeat_ttl: float = _env("TEST_RUN_HEARTBEAT_TTL", 30.0)
    #: TEST_RUN_SHUTDOWN_GRACE — a worker's drain time: after a warm shutdown (SIGTERM, a
    #: deploy) it takes no new run and lets running ones finish for this many seconds, then
    #: stops those still running: they end `cancelled` (`error_type: worker_shutdown`), slot
    #: freed. Give the process manager a stop timeout above it (see
    #: [Deploys](operations.md#deploys-graceful-worker-restarts)).
    shutdown_grace: float = _env("TEST_RUN_SHUTDOWN_GRACE", 30.0)
    #: TEST_RUN_RETENTION — seconds run records, their logs and idempotency keys are kept.
    retention: int = _env("TEST_RUN_RETENTION", 7 * 24 * 3600)
    #: WORKFLOW_MODULES — comma-separated modules whose import registers workflows.
    workflow_modules: tuple[str, ...] = _env("WORKFLOW_MODULES", ("worker.workflows.examples",))
    #: API_TOKEN — when set, every `/api/` request (reads too) needs
    #: `Authorization: Bearer <token>`; an unnamed caller (runs it triggers have no
    #: `triggered_by`). Surrounding whitespace (a stray newline from a secrets file) is
    #: stripped. Never shown in a repr.
    api_token: str | None = _env("API_TOKEN", None, repr=False)
    #: API_TOKENS — named tokens `name:token,name:token` (names: letters, digits, `_.@-`, up to
    #: 64); the caller's name is recorded on its runs (`triggered_by`) and in the `admitted` log
    #: line. Combines with API_TOKEN. An entry may end in scopes joined by `+`
    #: (`ci:tok1:trigger+read,ops:tok2:admin`): `read` (workflows, runs, event streams),
    #: `trigger` (trigger, and cancel its own runs), `cancel` (cancel anyone's), `admin`
    #: (all of them, `on_conflict=replace`, and the `triggered_by` of others' runs); none
    #: listed means every scope (see [Scopes](api.md#scopes)). Every token is compared in
    #: constant time on every request; none is ever logged, put in an error or shown in a repr.
    api_tokens: str | None = _env("API_TOKENS", None, repr=False)
    #: TRIGGER_RATE_LIMIT — triggers per caller, e.g. `30/minute` (a moving window counted in
    #: Redis: every web process shares it); beyond it 429 `rate_limited` with `Retry-After`, and
    #: nothing is taken. A caller is its token's name, else its address. Off by default: it
    #: costs each trigger a Redis round trip.
    trigger_rate_limit: str | None = _env("TRIGGER_RATE_LIMIT", None, shown="unset (no limit)")
    #: CORS_ORIGINS — comma-separated origins allowed to call the API from a browser; unset:
    #: no CORS headers at all (the page is served from the same origin).
    cors_origins: tuple[str, ...] = _env("CORS_ORIGINS", (), shown="unset (no CORS)")
    #: TEST_RUN_MAX_INPUT_BYTES — the largest `input` (as compact JSON) a trigger may carry:
    #: 413 beyond.
    max_input_bytes: int = _env("TEST_RUN_MAX_INPUT_BYTES", 16 * 1024)
    #: TEST_RUN_MAX_INPUT_DEPTH — how deep a run's JSON may nest (`{}` is 1 deep): a trigger
    #: whose `input` nests deeper answers 400 `invalid_request`, and a workflow result that does
    #: fails its run `invalid_result`, so every run kept can be read back (pydantic's
    #: serializer stops at 255 levels).
    max_input_depth: int = _env("TEST_RUN_MAX_INPUT_DEPTH", 32)
    #: TEST_RUN_MAX_LOG_LINE — characters kept of one log line; the rest is cut, with a marker
    #: saying how much.
    max_log_line: int = _env("TEST_RUN_MAX_LOG_LINE", 4096)
    #: TEST_RUN_MAX_STREAMS — event streams (`GET …/events`) one web process serves at once
    #: (each holds a gunicorn thread; the default is 2 workers × 12 threads): one more answers
    #: 503 `too_many_streams`, so watchers can never take every thread from triggers.
    max_streams: int = _env("TEST_RUN_MAX_STREAMS", 4)
    #: TEST_RUN_MAX_STREAMS_PER_CLIENT — event streams one caller (its token's name, else its
    #: address) may hold open on one web process: one more answers 429
    #: `too_many_client_streams` with `Retry-After`, so one client (which need never read what
    #: it is sent) cannot hold every stream of a process.
    max_streams_per_client: int = _env("TEST_RUN_MAX_STREAMS_PER_CLIENT", 2)
    #: TEST_RUN_STREAM_KEEPALIVE — seconds an event stream waits for an event (XREAD BLOCK)
    #: before it sends a keep-alive comment; a client that went away is noticed, and its thread
    #: freed, by then.
    stream_keepalive: float = _env("TEST_RUN_STREAM_KEEPALIVE", 15.0)
    #: TEST_RUN_QUEUE — the Celery queue test runs are published to and consumed from.
    queue: str = _env("TEST_RUN_QUEUE", "testruns")
    #: TEST_RUN_QUEUE_TYPE — `classic` or `quorum`: the RabbitMQ queue type TEST_RUN_QUEUE is
    #: declared with. A quorum queue is replicated across a cluster's nodes and confirms a
    #: message once a majority has it, so losing a node (its leader too) loses none. RabbitMQ
    #: only; every process must agree, and a queue's type is fixed when it is first declared
    #: (changing it needs a new queue name). See [scaling.md](scaling.md#quorum-queues-or-classic).
    queue_type: str = _env("TEST_RUN_QUEUE_TYPE", "classic")
    #: TEST_RUN_KEY_PREFIX — prefix of every Redis key this service writes (Celery's and
    #: kombu's own keys keep their names: the queue `TEST_RUN_QUEUE`, `_kombu.binding.*`,
    #: `celery-task-meta-<run_id>` for revoked runs).
    key_prefix: str = _env("TEST_RUN_KEY_PREFIX", "testrun")
    #: TEST_RUN_IO_TIMEOUT — connect timeout of every Redis and broker connection (web and
    #: worker); read timeouts are max(1 s, twice this), with one retry: a refused connection
    #: answers 503 in milliseconds, an unresponsive Redis within about 2 s (Celery's defaults
    #: take ~19 s).
    io_timeout: float = _env("TEST_RUN_IO_TIMEOUT", 0.5)
    #: TEST_RUN_MAX_LOG_LINES — log lines kept per run; older lines are dropped.
    max_log_lines: int = _env("TEST_RUN_MAX_LOG_LINES", 1000)
    #: TEST_RUN_MAX_RESULT_BYTES — a larger JSON result fails the run as `invalid_result`
    #: instead of being stored (run records are kept for the retention period); error texts
    #: are cut at 4,096 characters.
    max_result_bytes: int = _env("TEST_RUN_MAX_RESULT_BYTES", 64 * 1024)
    #: TEST_RUN_MAX_RUNS_PER_WORKFLOW — run records kept per workflow: each admission deletes
    #: the oldest beyond this, with their logs, event streams and idempotency keys (in the same
    #: atomic step), so no caller can fill Redis by triggering without end.
    max_runs_per_workflow: int = _env("TEST_RUN_MAX_RUNS_PER_WORKFLOW", 200)
    #: TEST_RUN_MAX_LOG_BYTES — bytes one run may write to its log in all (UTF-8, after each
    #: line is cut at TEST_RUN_MAX_LOG_LINE characters); then one marker line
    #: `[log cut: TEST_RUN_MAX_LOG_BYTES reached; …]`, and later lines are dropped.
    max_log_bytes: int = _env("TEST_RUN_MAX_LOG_BYTES", 64 * 1024)
    #: TRUSTED_HOSTS — comma-separated Host header values the web answers (a leading dot,
    #: `.example.com`, matches subdomains; ports are ignored); others get 400
    #: `host_not_allowed`, so a DNS-rebinding page cannot reach the API. WEB_BIND's host is
    #: added when it is not a wildcard; `*` allows any (e.g. behind a proxy that checks Host
    #: itself).
    trusted_hosts: tuple[str, ...] = _env("TRUSTED_HOSTS", ("localhost", "127.0.0.1"),
                                          shown="`localhost,127.0.0.1` (+ `WEB_BIND`'s host)")
    #: ALLOW_ANONYMOUS — the web refuses to start on a non-loopback address (e.g.
    #: `WEB_BIND=0.0.0.0:8000`) without API_TOKEN or API_TOKENS unless this is `true`: anyone
    #: on the network could trigger and cancel runs. At start it logs whether auth is on.
    allow_anonymous: bool = _env("ALLOW_ANONYMOUS", False)
    #: LOG_FORMAT — `text` (human lines) or `json` (one JSON object per line, from the web,
    #: the worker and gunicorn's access log alike; python-json-logger). The fields are listed
    #: under [Logs](operations.md#metrics-logs-and-liveness).
    log_format: str = _env("LOG_FORMAT", "text")
    #: WORKER_METRICS_PORT — the port of the worker's Prometheus exporter (`GET /metrics` on its
    #: main process, pool children added up). Give each worker on one host its own. A port
    #: that is taken is logged and the worker runs without an exporter.
    worker_metrics_port: int = _env("WORKER_METRICS_PORT", 9809)
    #: WORKER_METRICS_ADDRESS — the address that exporter listens on (`0.0.0.0` for a scraper
    #: on another host).
    worker_metrics_address: str = _env("WORKER_METRICS_ADDRESS", "127.0.0.1")
    #: TEST_RUN_FUSED_ADMISSION — when the broker is the tracking Redis (same server and
    #: database), the admit script also pushes the task message (worker/client/message.py
    #: builds it): one round trip, one atomic step. `false` publishes through kombu after the
    #: script instead (the path RabbitMQ and a broker elsewhere always take).
    fused_admission: bool = _env("TEST_RUN_FUSED_ADMISSION", True)
    #: TEST_RUN_FAST_PATH — the web answers a plain trigger (`POST /api/workflows/<id>/test-runs`,
    #: a JSON body of known size, no query but `on_conflict=reject|queue|join`, no `Origin`)
    #: in a WSGI layer before Flask, with the same checks and the same answer, and hands Flask
    #: everything else (web/fast.py). `false`: Flask answers every request.
    fast_path: bool = _env("TEST_RUN_FAST_PATH", True)

    #: TEST_RUN_MAX_WAIT — the longest `?wait=<seconds>` a trigger or a read may ask for (a
    #: request that waits holds a gunicorn thread); more is 400 `invalid_request`.
    max_wait: float = _env("TEST_RUN_MAX_WAIT", 60.0)
    #: TEST_RUN_MAX_WAITERS — requests one web process lets wait (`?wait=`) at once, each on a
    #: Redis connection of the waiters' own pool (never the request path's); one more is
    #: answered at once with the run as it is and a `Retry-After`. Keep TEST_RUN_MAX_STREAMS
    #: plus this below gunicorn's threads per worker, so triggers always find a thread.
    max_waiters: int = _env("TEST_RUN_MAX_WAITERS", 4)
    #: WEBHOOK_URL — the operator's endpoint: every run's ending is POSTed to it, signed
    #: (Standard Webhooks). Trusted: no address rules apply to it. Needs WEBHOOK_SECRET.
    webhook_url: str | None = _env("WEBHOOK_URL", None, shown="unset (none)")
    #: WEBHOOK_SECRET — `whsec_<base64>`: signs every webhook (WEBHOOK_URL's and each
    #: trigger's `callback_url`); without it no webhook is sent and a `callback_url` is 422.
    #: Never logged, put in an error, stored on a run or shown in a repr.
    webhook_secret: str | None = _env("WEBHOOK_SECRET", None, repr=False)
    #: WEBHOOK_ALLOWED_HOSTS — comma-separated hosts a trigger's `callback_url` may name
    #: (`.example.com` matches its subdomains); unset: any public host. A host listed exactly
    #: may also be http:// and resolve to a loopback, private or link-local address.
    webhook_allowed_hosts: tuple[str, ...] = _env("WEBHOOK_ALLOWED_HOSTS", (),
                                                  shown="unset (any public host)")
    #: WEBHOOK_RETRY_DELAY — seconds before a failed delivery's first retry (a timeout, a
    #: connection error, a 5xx or 429); each later one waits twice as long, stretched by a
    #: random factor of 1–2 (jitter).
    webhook_retry_delay: float = _env("WEBHOOK_RETRY_DELAY", 5.0)
    #: WEBHOOK_MAX_ATTEMPTS — attempts per delivery, the first included (10: retries over
    #: 43–85 minutes with the default delay); a 4xx other than 429 ends it at once.
    webhook_max_attempts: int = _env("WEBHOOK_MAX_ATTEMPTS", 10)
    #: WEBHOOK_TIMEOUT — seconds an attempt may take to connect, and to get each answer from
    #: the receiver, so a slow receiver holds a worker's pool process only briefly.
    webhook_timeout: float = _env("WEBHOOK_TIMEOUT", 5.0)
    #: WEBHOOK_QUEUE — the Celery queue of webhook deliveries (the Procfile's worker consumes
    #: it beside TEST_RUN_QUEUE).
    webhook_queue: str = _env("WEBHOOK_QUEUE", "testruns-webhooks")

    def callers(self) -> list[Token]:
        """Every accepted token with its caller's name (None for API_TOKEN) and scopes."""
        found = [Token(None, self.api_token)] if self.api_token else []
        return found + parse_tokens(self.api_tokens or "")

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
        values: dict[str, Any] = {}
        for spec in fields(cls):
            raw = env.get(spec.metadata["env"], "").strip()
            if raw:
                values[spec.name] = _parse(spec.metadata["env"], raw, spec.default)
        # the broker and the result backend default to REDIS_URL, not to the built-in URL
        redis_url = values.setdefault("redis_url", cls.redis_url)
        values.setdefault("broker_url", redis_url)
        values.setdefault("result_backend", redis_url)
        values.setdefault("tracking_url", redis_url)
        for name, variable in (("redis_url", "REDIS_URL"),
                               ("result_backend", "CELERY_RESULT_BACKEND")):
            if urlsplit(str(values[name])).scheme not in REDIS_SCHEMES:
                raise SettingsError(
                    variable,
                    f"must be a Redis URL (redis://, rediss://, unix:// or sentinel://), got "
                    f"{safe_url(values[name])!r}: slots and run records live in the "
                    "result backend, which must be Redis (a Redis Cluster for tracking goes in "
                    "TEST_RUN_TRACKING_URL)",
                )
        _check_tracking(str(values["tracking_url"]), str(values["broker_url"]))
        for name, variable in (("redis_url", "REDIS_URL"), ("broker_url", "CELERY_BROKER_URL"),
                               ("result_backend", "CELERY_RESULT_BACKEND"),
                               ("tracking_url", "TEST_RUN_TRACKING_URL")):
            if is_sentinel(str(values[name])):
                try:
                    sentinels_of(str(values[name]))
                except ValueError as exc:
                    raise SettingsError(variable, str(exc)) from None
                if not values.get("sentinel_master"):
                    raise SettingsError(
                        "REDIS_SENTINEL_MASTER",
                        f"must name the master when {variable} is a sentinel:// URL")
        _check_broker(str(values["broker_url"]), values)
        prefix = values.get("key_prefix", cls.key_prefix)
        if set(prefix) & PREFIX_FORBIDDEN or any(c.isspace() for c in prefix):
            raise SettingsError(
                "TEST_RUN_KEY_PREFIX",
                f"must not contain whitespace or any of {''.join(sorted(PREFIX_FORBIDDEN))} "
                f"(they are hash-tag and SCAN pattern syntax), got {prefix!r}")
        time_limit = float(values.get("time_limit", cls.time_limit))
        soft = float(values.setdefault(
            "soft_time_limit", time_limit - min(SOFT_LIMIT_MARGIN, time_limit * 0.2)))
        if soft >= time_limit:
            raise SettingsError(
                "TEST_RUN_SOFT_TIME_LIMIT",
                f"must be below TEST_RUN_TIME_LIMIT ({time_limit:g}), got {soft:g}",
            )
        log_format = str(values.get("log_format", cls.log_format)).lower()
        if log_format not in LOG_FORMATS:
            raise SettingsError("LOG_FORMAT", f"must be one of {', '.join(LOG_FORMATS)}, got "
                                f"{log_format!r}")
        values["log_format"] = log_format
        if int(values.get("max_input_depth", cls.max_input_depth)) > MAX_JSON_DEPTH:
            raise SettingsError("TEST_RUN_MAX_INPUT_DEPTH", f"must be at most {MAX_JSON_DEPTH}: "
                                "a run nested deeper could not be read back")
        if int(values.get("worker_metrics_port", cls.worker_metrics_port)) > 65535:
            raise SettingsError("WORKER_METRICS_PORT", "must be a port number (1-65535)")
        _check_webhooks(values)
        settings = cls(**values)
        settings.callers()  # refuses a malformed API_TOKENS now, not at the first request
        if settings.trigger_rate_limit:
            rate_limit(settings.trigger_rate_limit)
        return settings


def _check_webhooks(values: dict[str, Any]) -> None:
    """WEBHOOK_SECRET must be a usable Standard Webhooks secret, and WEBHOOK_URL needs it."""
    secret = values.get("webhook_secret")
    if secret is not None:
        body = str(secret).removeprefix("whsec_")
        try:
            key = base64.b64decode(body + "==", validate=False) if body else b""
        except (ValueError, binascii.Error):
            key = b""
        if not str(secret).startswith("whsec_") or not key:
            # never echo the value: it is a secret
            raise SettingsError("WEBHOOK_SECRET", "must be whsec_ followed by base64")
    url = values.get("webhook_url")
    if url is not None:
        if urlsplit(str(url)).scheme not in ("http", "https") or not urlsplit(str(url)).netloc:
            raise SettingsError("WEBHOOK_URL", "must be an http:// or https:// URL")
        if secret is None:
            raise SettingsError("WEBHOOK_URL", "needs WEBHOOK_SECRET to sign what it sends")


def _check_tracking(tracking_url: str, broker_url: str) -> None:
    """The tracking URL is a Redis or a Redis Cluster; a cluster needs a broker elsewhere."""
    if is_cluster(tracking_url):
        try:
            cluster_parse(tracking_url)
        except ValueError as exc:
            raise SettingsError("TEST_RUN_TRACKING_URL", str(exc)) from None
    elif urlsplit(tracking_url).scheme not in REDIS_SCHEMES:
        raise SettingsError(
            "TEST_RUN_TRACKING_URL",
            "must be a Redis URL (redis://, rediss://, unix://, sentinel://) or a Redis Cluster "
            f"(redis+cluster://, rediss+cluster://), got {safe_url(tracking_url)!r}")
    if is_cluster(broker_url):
        raise SettingsError("CELERY_BROKER_URL", "kombu has no Redis Cluster transport: use "
                            "RabbitMQ (amqp://) or a Redis of its own")


def _check_broker(broker_url: str, values: dict[str, Any]) -> None:
    """A RabbitMQ failover list names only RabbitMQ nodes; a quorum queue needs RabbitMQ."""
    if is_amqp(broker_url) and not all(is_amqp(url) for url in urls(broker_url)):
        raise SettingsError("CELERY_BROKER_URL", "a `;`-separated RabbitMQ list must name only "
                            f"amqp:// or amqps:// URLs, got {safe_url(broker_url)!r}")
    queue_type = str(values.get("queue_type", Settings.queue_type)).lower()
    if queue_type not in QUEUE_TYPES:
        raise SettingsError("TEST_RUN_QUEUE_TYPE", f"must be one of {', '.join(QUEUE_TYPES)}, "
                            f"got {queue_type!r}")
    if queue_type != "classic" and not is_amqp(broker_url):
        raise SettingsError("TEST_RUN_QUEUE_TYPE", f"{queue_type} queues need a RabbitMQ "
                            f"broker (amqp://), got {safe_url(broker_url)!r}")
    values["queue_type"] = queue_type


def rate_limit(raw: str) -> RateLimitItem:
    """`30/minute` (the `limits` notation: N per second|minute|hour|day, or N/5 minutes)."""
    try:
        return limits.parse(raw)
    except ValueError:
        raise SettingsError("TRIGGER_RATE_LIMIT",
                            f"expected a rate such as 30/minute, got {raw!r}") from None


def _parse(variable: str, raw: str, default: Any) -> Any:
    """`raw` as the kind of value `default` is: a yes/no, a positive int or float, a tuple of
    comma-separated names, or text."""
    if isinstance(default, bool):
        lowered = raw.lower()
        if lowered not in _BOOLEANS:
            raise SettingsError(variable, f"expected true or false, got {raw!r}")
        return _BOOLEANS[lowered]
    if isinstance(default, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip()) or default
    if isinstance(default, int | float):
        kind = int if isinstance(default, int) else float
        try:
            value = kind(raw)
        except ValueError:
            what = "a whole number" if kind is int else "a number of seconds"
            raise SettingsError(variable, f"expected {what}, got {raw!r}") from None
        if value <= 0:
            raise SettingsError(variable, f"must be greater than 0, got {raw}")
        return value
    return raw
