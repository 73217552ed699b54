"""The cluster row of `make bench`: a trigger (`service.trigger`: admit, publish) with tracking on
a Redis Cluster (6 local nodes, 3 masters + 3 replicas: tests/support/redis_cluster.py) and the
bench's Redis as a broker of its own — the two-step path a cluster always takes — as a ratio to
the fused path on one Redis (broker and tracking the same server), and to the two-step path on
one Redis, so the cluster's own cost shows apart from the second round trip's. Interleaved
rounds, medians of per-call times. A module of its own, apart from the other figures."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from worker.client.service import TestRunService
from worker.core.celery_app import create_celery
from worker.core.settings import Settings

from . import workflows

FUSED = "fused path (one Redis: tracking and broker)"
TWO_STEP = "two-step path (one Redis, TEST_RUN_FUSED_ADMISSION=false)"
CLUSTER = "cluster path (Redis Cluster tracking, a Redis broker)"


def triggers(config: dict[str, str], flush: Callable[[], None], n: int,
             rounds: int) -> dict[str, float]:
    """Median µs of one trigger on each path."""
    from tests.support.redis_cluster import RedisCluster

    cluster = RedisCluster().start()
    try:
        services = {
            FUSED: _service(config),
            TWO_STEP: _service(dict(config, TEST_RUN_FUSED_ADMISSION="false")),
            CLUSTER: _service(dict(config, TEST_RUN_TRACKING_URL=cluster.url())),
        }
        assert services[FUSED].fused and not services[CLUSTER].fused
        ids = workflows.ids()
        samples: dict[str, list[float]] = {label: [] for label in services}
        base = 1
        for _ in range(rounds):
            flush()
            for label, service in services.items():
                service.trigger(ids[base], {"warm": label})
                base += 1
                for i in range(n):
                    t = time.perf_counter()
                    service.trigger(ids[base + i], {})
                    samples[label].append(time.perf_counter() - t)
                base += n
        return {label: statistics.median(s) * 1e6 for label, s in samples.items()}
    finally:
        cluster.stop()


def _service(config: dict[str, str]) -> TestRunService:
    return TestRunService(create_celery(Settings.from_env(overrides=config), fail_fast=True))
