"""What the live gauges read from Redis when scraped (worker/core/metrics.py's LiveState): slots
held, their holders by status and the oldest holder's age, the workers online, and whether
Redis could evict slot keys — at a bounded cost, two pipelined round trips (on a Redis Cluster,
whose pipelines refuse scripts, TIME and CONFIG GET, three more calls), never a SCAN."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

import redis

from .settings import Settings
from .status import RunStatus
from .store import RunStore

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
    for workflow_id in ids:
        pipe.get(keys.slot(workflow_id))
    if store.connection.cluster:
        # a cluster pipeline refuses scripts, TIME and CONFIG GET: those go one by one
        holders = pipe.execute()
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
        *holders, online, now, policy = pipe.execute(raise_on_error=False)
    for reply in (*holders, online, now):
        if isinstance(reply, Exception):
            raise reply
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
    return Live(len(held), by_status, int(online[0]), oldest, safe, limits(store.settings))
