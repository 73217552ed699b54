"""RabbitMQ as the broker: kombu's failover list (`amqp://a;amqp://b;…`), quorum queues, and
the part of the delivery policy that differs from Redis (docs/scaling.md says why).

kombu splits a `;`-separated broker URL into alternates and, when a connection fails, moves on
to the next one round robin — for the web's publishes, its readiness probe and a worker's
consumer alike. Celery reads the whole string as `broker_url`, so a list needs nothing else.

On Redis a worker takes a message only when a pool process is free (`worker_disable_prefetch`,
which Celery applies to Redis only). On RabbitMQ the same promise — a busy worker reserves no
run it cannot start — comes from late acknowledgement with a prefetch of one per process: a
delivery stays unacked while its run executes, so a worker whose processes are all busy has
used up its prefetch. A delivery that comes back (its worker died mid-run, or its connection
dropped) meets the task's start check, which refuses a run that already started; so late ack
never executes a body twice.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SCHEMES = ("amqp", "amqps", "pyamqp")
SEPARATOR = ";"
#: TEST_RUN_QUEUE_TYPE's values (Celery's `task_default_queue_type`)
QUEUE_TYPES = ("classic", "quorum")


def urls(url: str) -> list[str]:
    """The broker URLs of a `;`-separated failover list (one URL: a list of one)."""
    return [chunk.strip() for chunk in url.split(SEPARATOR) if chunk.strip()]


def is_amqp(url: str) -> bool:
    """True for RabbitMQ (kombu picks the transport from the list's first URL)."""
    first = urls(url)
    return bool(first) and urlsplit(first[0]).scheme in SCHEMES


def delivery_options(queue_type: str) -> dict[str, object]:
    """Celery settings of the delivery policy on RabbitMQ (worker/core/celery_app.py has the
    Redis one)."""
    return {
        # unacked until the run ends, one per pool process: a busy worker has no prefetch left
        # for a waiting run, which stays in the queue for a free worker
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        # every ending settles its delivery — a failure, a hard time limit, a killed pool
        # process are acked, never requeued: a run is never re-run
        "task_acks_on_failure_or_timeout": True,
        "task_reject_on_worker_lost": False,
        # a broker node lost mid-run must not kill the runs executing: their deliveries go back
        # to the queue with the connection, and the start check refuses them when they return
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # …and until they end that worker's prefetch leaves out their processes, given back as
        # each ends (worker/runner/consumer.py): Celery's own reduction skips quorum queues
        # and is given back per ack, not per ended run
        "worker_enable_prefetch_count_reduction": False,
        # declared by whichever side touches the queue first (web or worker): both must agree
        "task_default_queue_type": queue_type,
        # …and every other queue we route to (the webhooks' queue) is of the same type: a
        # classic queue lives on one node, and a worker that cannot declare it while that node
        # is down stops consuming the runs' queue too
        "task_create_missing_queue_type": queue_type,
    }


def nodes(url: str) -> int:
    """How many brokers a fail-fast client tries: each node of a RabbitMQ list, else one."""
    return len(urls(url)) if is_amqp(url) else 1


def failover_retries(url: str) -> int:
    """Connection retries for a fail-fast client: enough to try every node of the list once
    (at least one retry, as for a single broker)."""
    return max(1, nodes(url) - 1)
