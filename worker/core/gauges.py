"""What the live gauges read from Redis when scraped (LiveState): slots
held, their holders by status and the oldest holder's age, the pending runs, the workers online,
and whether Redis could evict slot keys — at a bounded cost, two pipelined round trips (on a
Redis Cluster, whose pipelines refuse scripts, TIME and CONFIG GET, three more calls), never a
SCAN."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .errors import REDIS_OUTAGES
from .settings import Settings
from .status import RunStatus
from .store import RunStore, queue_slots, slot_pairs

logger = logging.getLogger(__name__)

#: the settings the alert rules compare the live state with (deploy/prometheus/alerts.yml), by
#: their variable, as `testrun_limit_seconds{setting=…}`: a rule holds for any deployment's
LIMITS = ("TEST_RUN_TIME_LIMIT", "TEST_RUN_QUEUE_TIMEOUT", "TEST_RUN_LEASE_GRACE",
          "TEST_RUN_HEARTBEAT_TTL", "TEST_RUN_SHUTDOWN_GRACE")


@dataclass(frozen=True)
class Live:
    """One scrape's reading. `oldest_s`: by holder status (queued, running), the age of the
    oldest holder on Redis' clock — a queued run's since its admission, a running run's since
    its start (0 when none holds). `eviction_safe`: Redis' maxmemory-policy is `noeviction`
    (`testruns check`'s answer); None when CONFIG is not allowed (a managed Redis)."""

    held: int
    by_status: dict[str, int]
    online: int
    pending: int = 0
    oldest_s: dict[str, float] = field(default_factory=dict)
    eviction_safe: bool | None = None
    limits: dict[str, float] = field(default_factory=dict)


def limits(settings: Settings) -> dict[str, float]:
    """LIMITS' values in seconds, by variable."""
    return {spec.metadata["env"]: float(getattr(settings, spec.name))
            for spec in fields(settings) if spec.metadata["env"] in LIMITS}


def live_state(store: RunStore, workflow_ids: Iterable[str]) -> Live:
    """One pipeline over the given workflows' slots (plus the workers count, Redis' clock and
    its eviction policy), then one over the holders' status and times. Bounded by the
    registered workflows (the registry is the index)."""
    client, scripts, keys = store.connection.redis, store.connection.scripts, store.keys
    ids = list(workflow_ids)
    pipe = client.pipeline(transaction=False)
    cluster = store.connection.cluster
    queue_slots(pipe, keys, ids, cluster=cluster)  # each slot and pending run
    if cluster:
        # a cluster pipeline refuses scripts, TIME and CONFIG GET: those go one by one
        slots = pipe.execute()
        online = [scripts.workers.count(keys, store.settings.queue)]
        now = client.time()
        try:
            policy: Any = client.config_get("maxmemory-policy")
        except redis.ResponseError as exc:  # CONFIG disabled (a managed cluster)
            policy = exc
    else:
        scripts.workers.count(keys, store.settings.queue, client=pipe)
        pipe.time()
        pipe.config_get("maxmemory-policy")
        *slots, online, now, policy = pipe.execute(raise_on_error=False)
    for reply in (*slots, online, now):
        if isinstance(reply, Exception):
            raise reply
    pairs = slot_pairs(slots, cluster=cluster)
    holders = [pair[0] for pair in pairs]
    pending = sum(1 for pair in pairs if pair[1])
    held = [(w, str(h)) for w, h in zip(ids, holders, strict=True) if h]
    now_ms = now[0] * 1000 + now[1] // 1000
    by_status: dict[str, int] = {}
    oldest = {RunStatus.QUEUED.value: 0.0, RunStatus.RUNNING.value: 0.0}
    if held:
        pipe = client.pipeline(transaction=False)
        for workflow_id, holder in held:
            pipe.hmget(keys.run(workflow_id, holder), "status", "created_ms", "started_ms")
        for status, created, started in pipe.execute():
            if not status:
                continue
            by_status[str(status)] = by_status.get(str(status), 0) + 1
            since = started if status == RunStatus.RUNNING.value else created
            if str(status) in oldest and since:
                age = max(0.0, (now_ms - int(since)) / 1000)
                oldest[str(status)] = max(oldest[str(status)], age)
    safe = None
    if isinstance(policy, dict) and policy.get("maxmemory-policy"):
        safe = policy["maxmemory-policy"] == "noeviction"
    return Live(len(held), by_status, int(online[0]), pending, oldest, safe,
                limits(store.settings))


class LiveState(Collector):
    """Gauges read from Redis when scraped (`live_state`, above), at a bounded cost: one
    pipeline of MGETs over the registered workflows' slots and pending runs (the registry is
    the index: no SCAN), the workers count, Redis' clock and its eviction policy, then one
    pipeline of the holders' status and times; and the settings the alert rules compare them
    with. Nothing is yielded while Redis is unreachable (the scrape still answers)."""

    def __init__(self, read: Callable[[], Live]) -> None:
        self._read = read

    def collect(self) -> Iterator[Metric]:
        try:
            live = self._read()
        except REDIS_OUTAGES as exc:
            logger.warning("metrics: could not read the live state from Redis: %s", exc)
            return
        yield GaugeMetricFamily("testrun_slots_held", "Workflow slots held now",
                                value=live.held)
        yield GaugeMetricFamily("testrun_runs_pending", "Pending runs waiting for a slot",
                                value=live.pending)
        runs = GaugeMetricFamily("testrun_runs_active", "Runs holding a slot, by status",
                                 labels=["status"])
        oldest = GaugeMetricFamily(
            "testrun_oldest_slot_age_seconds", "Age of the oldest run holding a slot, by its "
            "status: a queued run's since its admission, a running run's since its start, on "
            "Redis' clock (0: none)", labels=["status"])
        for status in (RunStatus.QUEUED, RunStatus.RUNNING):
            runs.add_metric([status.value], live.by_status.get(status.value, 0))
            oldest.add_metric([status.value], live.oldest_s.get(status.value, 0.0))
        yield runs
        yield oldest
        yield GaugeMetricFamily("testrun_workers_online",
                                "Workers advertising that they consume the test-run queue",
                                value=live.online)
        if live.eviction_safe is not None:
            yield GaugeMetricFamily(
                "testrun_redis_eviction_safe", "1 when Redis' maxmemory-policy is noeviction; "
                "0 when memory pressure could evict slot keys (`testruns check`)",
                value=1 if live.eviction_safe else 0)
        limits = GaugeMetricFamily("testrun_limit_seconds", "This process's settings that "
                                   "bound a run (TEST_RUN_TIME_LIMIT, …), for alert rules",
                                   labels=["setting"])
        for name, seconds in live.limits.items():
            limits.add_metric([name], seconds)
        yield limits
