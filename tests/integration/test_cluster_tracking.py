"""Tracking on a real Redis Cluster (TEST_RUN_TRACKING_URL=redis+cluster://…): six nodes, 3
masters and 3 replicas (tests/support/redis_cluster.py), a real prefork worker, the broker the
suite's single Redis (a broker of its own: kombu has no cluster transport, so admission takes
the two-step path). The cluster's own faults at scale are tests/chaos/test_cluster_hosts.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cluster import key_slot

from tests.support import redis_cluster
from tests.support.api import (
    delete_prefix,
    expect_status,
    keys_of,
    make_config,
    store_of,
    trigger,
    unique,
    wait_terminal,
)
from tests.support.procs import Worker, wait_for
from tests.support.redis_cluster import RedisCluster
from web import create_app
from worker.client.message import fused
from worker.core.settings import Settings
from worker.core.status import RunStatus

WORKERS: list[Worker] = []  # the module's worker, for its log when a test fails


@pytest.fixture(scope="module")
def rcluster() -> Iterator[RedisCluster]:
    yield from redis_cluster.running()


@pytest.fixture(scope="module")
def cluster_stack(rcluster: RedisCluster, redis_client: redis.Redis) -> Iterator[dict[str, str]]:
    config = make_config(TEST_RUN_TRACKING_URL=rcluster.url(), TEST_RUN_HEARTBEAT_TTL="10",
                         TEST_RUN_TIME_LIMIT="20", TEST_RUN_SOFT_TIME_LIMIT="18",
                         TRIGGER_RATE_LIMIT="1000/minute")
    worker = Worker(config, concurrency=2).wait_ready()
    WORKERS[:] = [worker]
    yield config
    worker.kill_group()
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture
def web(cluster_stack: dict[str, str]) -> Any:
    return create_app(cluster_stack).test_client()


def idle(cluster_stack: dict[str, str], **overrides: str) -> dict[str, str]:
    """The cluster's config on a prefix and queue of this test's own that no worker consumes:
    its runs stay queued."""
    name = unique("idle")
    return dict(cluster_stack, TEST_RUN_KEY_PREFIX=name, TEST_RUN_QUEUE=name, **overrides)


def test_a_cluster_tracking_url_takes_the_two_step_path(cluster_stack):
    settings = Settings.from_env(overrides=cluster_stack)
    assert settings.tracking_url.startswith("redis+cluster://")
    assert settings.result_backend == settings.redis_url  # its own setting, a single Redis
    assert not fused(settings)
    assert store_of(cluster_stack).connection.cluster


def test_runs_end_on_the_cluster_and_nothing_lands_on_the_single_redis(
        web, cluster_stack, rcluster, redis_client):
    done = {}
    for workflow, body, status in (("echo", {"n": 1}, RunStatus.SUCCEEDED),
                                   ("fail", {"message": "no"}, RunStatus.FAILED),
                                   ("sleep", {"seconds": 0}, RunStatus.SUCCEEDED)):
        rid = trigger(web, workflow, body)["run_id"]
        done[workflow] = wait_terminal(web, rid, timeout=20)
        assert done[workflow]["status"] == status.value, done[workflow]
    assert done["echo"]["result"] == {"n": 1}
    # the run lists read each run by a script: one call each on a cluster (no pipeline)
    listed = expect_status(web.get("/api/workflows/echo/test-runs"), 200)
    assert done["echo"]["run_id"] in [r["run_id"] for r in listed["runs"]]
    keys = keys_of(cluster_stack)
    assert rcluster.client().exists(keys.run("echo", done["echo"]["run_id"])) == 1
    prefix = cluster_stack["TEST_RUN_KEY_PREFIX"]
    assert not [k for k in redis_client.scan_iter(match=f"{prefix}:*{{echo}}*", count=1000)]


def test_cancel_a_queued_run_and_the_gauges_read_the_cluster(rcluster, cluster_stack):
    config = idle(cluster_stack)
    web = create_app(config).test_client()
    rid = trigger(web, "echo", {})["run_id"]
    metrics = web.get("/metrics").get_data(as_text=True)
    assert "testrun_slots_held 1.0" in metrics, metrics
    cancelled = expect_status(web.post(f"/api/test-runs/{rid}/cancel"), 202)
    assert cancelled["status"] == RunStatus.CANCELLED
    assert rcluster.client().get(keys_of(config).slot("echo")) is None


def test_the_rate_limit_counts_on_the_cluster(rcluster, cluster_stack):
    config = idle(cluster_stack, TRIGGER_RATE_LIMIT="2/minute")
    web = create_app(config).test_client()
    answers = [web.post("/api/workflows/echo/test-runs?on_conflict=replace",
                        json={"input": {}}).status_code for _ in range(3)]
    assert answers == [202, 202, 429], answers
    prefix = keys_of(config).rate_limit_prefix()
    assert list(rcluster.client().scan_iter(match=f"{prefix}*"))


def test_scripts_flushed_on_every_node_are_loaded_again(web, rcluster):
    """What a failover to a replica that never saw SCRIPT LOAD looks like: NOSCRIPT, answered
    by loading the script on every master and calling again."""
    for port in rcluster.live_ports():
        rcluster.node(port).script_flush()
    rid = trigger(web, "echo", {"again": True})["run_id"]
    assert wait_terminal(web, rid, timeout=20)["status"] == RunStatus.SUCCEEDED


def test_a_slot_in_migration_answers_503_then_the_trigger_goes_through(
        web, rcluster, cluster_stack):
    """A multi-key script on a slot that is migrating, its keys split or not there yet,
    gets TRYAGAIN until redis-py gives up: a retryable 503, never a 500 or a lost run."""
    rid = trigger(web, "echo", {})["run_id"]  # the workflow's keys exist on its master now
    wait_terminal(web, rid, timeout=20)
    slot = key_slot(keys_of(cluster_stack).slot("echo").encode())
    source = rcluster.master_of_slot(slot)
    target = next(p for p in rcluster.masters() if p != source)
    assert source is not None
    src, dst = rcluster.node(source), rcluster.node(target)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", rcluster.node_id(source))
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", rcluster.node_id(target))
    try:
        started = time.monotonic()
        resp = web.post("/api/workflows/echo/test-runs", json={"input": {}})
        assert resp.status_code == 503, resp.get_json()
        assert resp.get_json()["error"] == "queue_unavailable"
        assert resp.get_json()["what"] == "redis"
        assert time.monotonic() - started < 5
    finally:
        for node in (src, dst):
            node.execute_command("CLUSTER", "SETSLOT", slot, "STABLE")
    rid = trigger(web, "echo", {"after": 1})["run_id"]
    assert wait_terminal(web, rid, timeout=20)["status"] == RunStatus.SUCCEEDED


def test_a_master_killed_costs_503s_for_its_slots_until_its_replica_is_promoted(
        web, rcluster, cluster_stack):
    """SIGKILL the master of a long run's workflow: triggers on that master's slots answer
    503 until its replica takes over (~cluster-node-timeout), then 202; the running run keeps
    its lease (written long before the kill, so replicated) and succeeds."""
    long_run = trigger(web, "sleep", {"seconds": 6})["run_id"]
    wait_for(lambda: web.get(f"/api/test-runs/{long_run}").get_json()["status"]
             == RunStatus.RUNNING, 15, "the long run to start")
    slot = key_slot(keys_of(cluster_stack).slot("sleep").encode())
    victim = rcluster.master_of_slot(slot)
    assert victim is not None and rcluster.replica_of(victim) is not None
    killed_at = rcluster.kill(victim)
    answers: list[tuple[float, int]] = []

    def promoted() -> bool:
        resp = web.get("/api/workflows/sleep")
        answers.append((time.time() - killed_at, resp.status_code))
        assert resp.status_code in (200, 503), resp.get_json()
        return resp.status_code == 200

    wait_for(promoted, 20, "the replica to be promoted", interval=0.1)
    window = answers[-1][0]
    print(f"\nmaster killed: 503 for {window:.2f} s "
          f"({sum(1 for _, s in answers if s == 503)} reads), then 200")
    assert window < 10
    ended = wait_terminal(web, long_run, timeout=30)
    assert ended["status"] == RunStatus.SUCCEEDED, (ended, WORKERS[0].log()[-4000:])
    rcluster.spawn(victim)  # it rejoins as a replica of its old replica
    wait_for(rcluster.healthy, 30, "the cluster to be whole again", interval=0.2)


def test_waiting_and_the_event_stream_read_the_cluster(web):
    """`?wait=` and GET …/events read a run's stream (XREAD BLOCK, XRANGE) on its node."""
    resp = web.post("/api/workflows/echo/test-runs?wait=15", json={"input": {"w": 1}})
    body = expect_status(resp, 200)
    assert body["status"] == RunStatus.SUCCEEDED and body["result"] == {"w": 1}
    stream = web.get(f"/api/test-runs/{body['run_id']}/events")
    text = stream.get_data(as_text=True)
    assert stream.status_code == 200 and "event: run" in text and "event: end" in text, text


@pytest.fixture
def own_cluster() -> Iterator[RedisCluster]:
    """A cluster of this test's own: it stops every node."""
    yield from redis_cluster.running()


def test_every_node_down_answers_503_and_the_same_app_serves_when_they_are_back(
        cluster_stack, own_cluster):
    """No node of the cluster answers (every one restarting): redis-py's RedisCluster raises
    RedisClusterException ("cannot be connected", "slots are not covered") from its slot
    map's refresh, which answered a trigger 500 `internal_error`; it is an outage like a
    single Redis away — 503 `queue_unavailable` — and the same app admits again after."""
    config = idle(cluster_stack, TEST_RUN_TRACKING_URL=own_cluster.url())
    web = create_app(config).test_client()
    rid = trigger(web, "echo", {})["run_id"]
    ports = sorted(own_cluster.procs)
    for port in ports:
        own_cluster.kill(port)
    for resp in (web.post("/api/workflows/probe/test-runs", json={"input": {}}),
                 web.get(f"/api/test-runs/{rid}"), web.post(f"/api/test-runs/{rid}/cancel")):
        assert resp.status_code == 503, resp.get_json()
        assert resp.get_json()["error"] == "queue_unavailable"
    for port in ports:  # back on their own nodes.conf, with no data (none was saved)
        own_cluster.spawn(port)
    wait_for(lambda: web.post("/api/workflows/probe/test-runs",
                              json={"input": {}}).status_code == 202, 30,
             "the same app to admit again")
