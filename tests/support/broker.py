"""The brokers the lifecycle and chaos suites run against (`broker_matrix` tests):

- `redis`: the tracking Redis is the broker too (the default deployment);
- `redis-broker`: the broker is a Redis of its own (a private redis-server for the session);
- `amqp`: RabbitMQ, tracking stays in Redis.

TEST_BROKERS (comma-separated) chooses which run; by default all three, and a broker that does
not answer is skipped with a message saying so, never silently (the session's header says it
too). The amqp leg runs `AMQP_SUBSET` by default — one test per path where the broker matters
(delivery, expiry, revoke, a dying worker) — so `make test` stays under its time budget;
TEST_AMQP_FULL=1 (set by `make soak`) runs every matrix test against RabbitMQ."""

from __future__ import annotations

import os
import signal
import socket
from urllib.parse import urlsplit

import redis
from kombu import Connection

from tests.support.procs import Worker, holds_throughout
from worker.core.celery_app import TASK_NAME

ALL = ("redis", "redis-broker", "amqp")
DEFAULT = ALL
#: the amqp leg of `make test` (test function names); the whole matrix with TEST_AMQP_FULL=1
AMQP_SUBSET = frozenset({
    "test_echo_succeeds_with_its_result_and_logs",
    "test_fail_is_failed_with_error_and_type",
    "test_sleep_past_soft_limit_times_out",
    "test_run_queued_past_queue_timeout_expires_and_never_runs",
    "test_queued_run_with_no_worker_expires_when_its_lease_runs_out",
    "test_cancel_while_queued_never_runs_the_body",
    "test_cancel_while_running_stops_the_body_then_frees_the_slot",
    "test_killed_pool_child_fails_as_worker_lost_and_is_not_rerun",
    "test_a_duplicate_delivered_after_the_run_ended_does_not_run_it_again",
    "test_duplicates_published_while_queued_run_the_body_once",
    "test_worker_main_process_sigkill_frees_the_slot_within_the_heartbeat_ttl",
    "test_cold_shutdown_ends_the_run_and_frees_the_slot",
    "test_revoke_sent_while_no_worker_is_up_holds_when_one_starts",
    "test_a_waiting_run_is_taken_by_the_idle_worker_not_reserved_by_the_busy_one",
    "test_a_run_whose_worker_dies_mid_run_never_executes_again",
    "test_every_ending_settles_its_delivery",
    "test_sigterm_drains_then_stops_running_runs_and_leaves_queued_ones_to_the_next_worker",
})
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def enabled() -> tuple[str, ...]:
    chosen = tuple(b.strip() for b in os.environ.get("TEST_BROKERS", "").split(",") if b.strip())
    unknown = set(chosen) - set(ALL)
    if unknown:
        raise ValueError(f"TEST_BROKERS: unknown broker(s) {sorted(unknown)}; known: {ALL}")
    return chosen or DEFAULT


def amqp_full() -> bool:
    return os.environ.get("TEST_AMQP_FULL", "").strip().lower() in ("1", "true", "yes")


def header() -> str:
    """One line for the session's header: which brokers run, and why one does not."""
    chosen = enabled()
    parts = []
    for kind in chosen:
        if kind != "amqp":
            parts.append(kind)
        elif not answers(AMQP_URL):
            parts.append(f"amqp SKIPPED (RabbitMQ does not answer at {safe_url(AMQP_URL)})")
        else:
            parts.append("amqp (every matrix test)" if amqp_full() else
                         f"amqp ({len(AMQP_SUBSET)} matrix tests; TEST_AMQP_FULL=1 or "
                         "`make soak` for all)")
    return "brokers: " + ", ".join(parts)


def safe_url(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def delete_queue(config: dict[str, str]) -> None:
    """RabbitMQ keeps a test's durable queue after the test: delete it (no-op on Redis)."""
    url = config.get("CELERY_BROKER_URL", "")
    if not url.startswith("amqp") or not answers(url):
        return
    try:
        with Connection(url, connect_timeout=2) as conn:
            for queue in (config["TEST_RUN_QUEUE"], config.get("WEBHOOK_QUEUE")):
                if queue:
                    conn.default_channel.queue_delete(queue)
    except Exception:  # noqa: BLE001 - cleanup only
        pass


def answers(url: str, timeout: float = 0.5) -> bool:
    """True if a node of the URL (or of any URL in a `;`-separated list) accepts a connection."""
    for chunk in (c for c in url.split(";") if c.strip()):
        parts = urlsplit(chunk.strip())
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672),
                                          timeout=timeout):
                return True
        except OSError:
            continue
    return False


def queued_messages(config: dict[str, str]) -> int:
    """Messages waiting in the test's queue, on whichever broker the config names."""
    url = config.get("CELERY_BROKER_URL") or config["REDIS_URL"]
    queue = config["TEST_RUN_QUEUE"]
    if url.startswith(("redis", "unix")):
        return int(redis.Redis.from_url(url).llen(queue))
    with Connection(url) as conn:
        return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)


def on_rabbitmq(config: dict[str, str]) -> bool:
    return config.get("CELERY_BROKER_URL", "").startswith("amqp")


def received(worker: Worker, run_id: str) -> int:
    """Deliveries of the run the worker took (its log's `received` lines)."""
    return worker.log().count(f"{TASK_NAME}[{run_id}] received")


def ignored(worker: Worker, run_id: str) -> int:
    """Deliveries of the run its start check refused (Celery's `ignored` lines)."""
    return worker.log().count(f"{TASK_NAME}[{run_id}] ignored")


def assert_queue_stays_empty(config: dict[str, str], worker: Worker) -> None:
    """Stop the worker (warm: the acks it has scheduled go out first; a SIGKILL a millisecond
    after a run ended could beat its ack), then nothing may come back to the queue: a delivery
    it left unacked is requeued the moment its connection closes (RabbitMQ)."""
    worker.signal(signal.SIGTERM)
    worker.wait_exit(30)
    holds_throughout(lambda: queued_messages(config) == 0, 1.5,
                     "an empty queue after the worker's connection closed")
