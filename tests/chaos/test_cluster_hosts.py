"""Past one Redis, with real nodes on this machine: two web hosts (gunicorn) and two worker hosts
(prefork workers) on tracking in a 6-node Redis Cluster (3 masters, 3 replicas,
tests/support/redis_cluster.py) and a 3-node RabbitMQ cluster with a quorum queue as the broker
(tests/support/rabbit_cluster.py). The lifecycle's core paths pass on it (test_lifecycle.py's
tests, collected here), and each fault keeps the invariants while 20 workflows are triggered,
cancelled and run: never two runs of a workflow executing, no slot outliving its run, no run
lost silently (each ends with a reason), and only 503 `queue_unavailable` while a slot moves or
a master is away. Each fault test prints what it measured.

None of these faults cuts a host off the network, so the hosts are processes on loopback; a
cut host is tests/chaos/test_partition.py (network namespaces). `make test` runs the Redis
Cluster's faults once and short, on the machine's RabbitMQ (a quorum queue on one node: the
suite's other RabbitMQ cluster, test_rabbit_cluster.py, kills its leader); `make soak`
(TEST_CLUSTER_FULL=1) starts the 3-node RabbitMQ cluster, reshards half the slots three times,
repeats every fault three times and kills the RabbitMQ leader too."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import redis
from redis.cluster import key_slot

from tests.integration.test_lifecycle import (  # noqa: F401 - collected here, on the clusters
    test_cancel_while_running_stops_the_body_then_frees_the_slot,
    test_echo_succeeds_with_its_result_and_logs,
)
from tests.support import broker as brokers
from tests.support import rabbit_cluster, redis_cluster
from tests.support.api import body_events, delete_prefix, keys_of, make_config
from tests.support.cluster_hosts import WORKFLOWS, Stack, Traffic, Writer, settled
from tests.support.procs import Worker, alive, wait_for
from tests.support.rabbit_cluster import RabbitCluster
from tests.support.redis_cluster import RedisCluster
from worker.core.status import ErrorType, RunStatus

pytestmark = [pytest.mark.cluster_hosts, pytest.mark.timeout(900)]

FULL = os.environ.get("TEST_CLUSTER_FULL", "").strip().lower() in ("1", "true", "yes")
if FULL:  # the rest of the lifecycle's core paths, and the faults `make test` leaves out
    from tests.integration.test_lifecycle import (  # noqa: F401
        test_cancel_while_queued_never_runs_the_body,
        test_fail_is_failed_with_error_and_type,
        test_hang_is_ended_by_the_hard_limit,
        test_sleep_past_soft_limit_times_out,
    )
#: `make test` leaves these to `make soak`: the graceful failover (nothing is lost by
#: design) and the RabbitMQ leader killed (tests/chaos/test_rabbit_cluster.py kills it in
#: `make test`, on a single Redis)
full_only = pytest.mark.skipif(not FULL, reason="make soak runs it (TEST_CLUSTER_FULL=1)")
ROUNDS = 3 if FULL else 1
#: slots moved per resharding round: half of them (`make soak`), a short form in `make test`
RESHARD_SLOTS = 8192 if FULL else 1024
HEARTBEAT_TTL = 6.0


@pytest.fixture(scope="module")
def rcluster() -> Iterator[RedisCluster]:
    yield from redis_cluster.running()


@pytest.fixture(scope="module")
def rabbit() -> Iterator[RabbitCluster | None]:
    """The 3-node RabbitMQ cluster (`make soak`); `make test`'s short form uses the machine's
    RabbitMQ instead (a quorum queue on one node), to leave the 2 cores to the rest of the
    suite, which starts a RabbitMQ cluster of its own (test_rabbit_cluster.py)."""
    if "amqp" not in brokers.enabled():
        pytest.skip("TEST_BROKERS leaves out amqp: the multi-host cluster tests are skipped")
    if not FULL:
        if not brokers.answers(brokers.AMQP_URL):
            pytest.skip(f"RabbitMQ does not answer at {brokers.safe_url(brokers.AMQP_URL)}")
        yield None
        return
    if not rabbit_cluster.installed():
        pytest.skip("no rabbitmq-server (Debian's package) here: the cluster tests are skipped")
    cluster = RabbitCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def broker(rcluster: RedisCluster, rabbit: RabbitCluster | None) -> dict[str, str]:
    """conftest's `broker`, overridden: every config in this module is the Redis Cluster and
    RabbitMQ (the 3-node cluster in `make soak`), a quorum queue."""
    return {"CELERY_BROKER_URL": rabbit.urls if rabbit else brokers.AMQP_URL,
            "TEST_RUN_QUEUE_TYPE": "quorum", "TEST_RUN_TRACKING_URL": rcluster.url()}


@pytest.fixture(scope="module")
def session_config(redis_client: redis.Redis, broker: dict[str, str]) -> Iterator[dict[str, str]]:
    config = make_config(**broker)
    yield config
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])
    brokers.delete_queue(config)


@pytest.fixture(scope="module")
def session_worker(session_config: dict[str, str]) -> Iterator[Worker]:
    worker = Worker(session_config, concurrency=2).wait_ready(60)
    yield worker
    worker.kill_group()


@pytest.fixture
def stack(config: dict[str, str], rcluster: RedisCluster,
          rabbit: RabbitCluster | None) -> Iterator[Stack]:
    made = Stack(dict(config, TEST_RUN_TIME_LIMIT="30", TEST_RUN_SOFT_TIME_LIMIT="25",
                      TEST_RUN_QUEUE_TIMEOUT="20", TEST_RUN_HEARTBEAT_TTL=str(HEARTBEAT_TTL)))
    yield made
    made.close()
    for node in rabbit.nodes if rabbit else []:  # the next test gets both clusters whole
        if not node.alive():
            node.start().wait_ready()
    rcluster.revive()
    wait_for(rcluster.healthy, 60, "the Redis Cluster to be whole", interval=0.2)


def writing_and_triggering(stack: Stack, rcluster: RedisCluster) -> tuple[Writer, Traffic]:
    """A counter written in the probe workflow's slot (what a failover may lose) and the
    workflows' traffic, both flowing before the fault comes."""
    writer = Writer(rcluster, "{probe}:lag:" + stack.config["TEST_RUN_KEY_PREFIX"])
    writer.start()
    wait_for(lambda: len(writer.acks) > 100, 10, "the writer to write")
    traffic = Traffic(stack)
    traffic.start()
    wait_for(lambda: len(traffic.answers) > 10, 20, "traffic to flow")
    return writer, traffic


def test_live_resharding_answers_only_503s_and_keeps_the_invariants(stack, rcluster,
                                                                   redis_client):
    """Each round moves RESHARD_SLOTS slots from two masters to the third and rebalances them
    back (redis-cli), then moves each of the 20 workflows' own slots, keys and all, to another
    master: the slots the traffic lives in are the ones migrating."""
    hot = sorted({key_slot(keys_of(stack.config).slot(wf).encode()) for wf in WORKFLOWS})
    traffic = Traffic(stack)
    traffic.start()
    wait_for(lambda: len(traffic.answers) > 20, 30, "traffic to flow")
    moved = keys_moved = 0
    try:
        for _ in range(ROUNDS):
            masters = rcluster.masters()
            ids = {p: rcluster.node_id(p) for p in masters}
            target = masters[0]
            out = rcluster.cli("--cluster", "reshard", f"{rcluster.host}:{target}",
                               "--cluster-from", ",".join(ids[p] for p in masters[1:]),
                               "--cluster-to", ids[target], "--cluster-slots",
                               str(RESHARD_SLOTS), "--cluster-yes", timeout=600)
            assert "[ERR]" not in out, out[-2000:]
            rcluster.agreed()
            out = rcluster.cli("--cluster", "rebalance", f"{rcluster.host}:{target}",
                               timeout=600)
            assert "[ERR]" not in out, out[-2000:]
            rcluster.agreed()
            moved += RESHARD_SLOTS
            for slot in hot:
                masters = rcluster.masters()
                owner = rcluster.master_of_slot(slot)
                keys_moved += rcluster.move_slot(
                    slot, masters[(masters.index(owner) + 1) % len(masters)]
                    if owner in masters else masters[0])
            rcluster.agreed()
    finally:
        traffic.stop()
    accepted = traffic.check()
    runs = settled(stack, redis_client, accepted)
    codes = traffic.codes()
    print(f"\nresharding: {moved} slots moved out and rebalanced back over {ROUNDS} round(s), "
          f"the {len(hot)} workflows' slots moved with {keys_moved} keys; "
          f"answers {dict(codes)}; {len(accepted)} admitted, "
          f"{sum(r['status'] == RunStatus.SUCCEEDED for r in runs.values())} succeeded")
    assert len(accepted) >= 20 and keys_moved > 0


def test_a_master_killed_and_its_replica_promoted(stack, rcluster, redis_client):
    for round_ in range(1, ROUNDS + 1):
        probe = keys_of(stack.config).slot("probe")
        victim = rcluster.master_of_slot(key_slot(probe.encode()))
        assert victim is not None
        # a counter in the probe workflow's slot: on the master about to die
        writer, traffic = writing_and_triggering(stack, rcluster)
        killed_at = rcluster.kill(victim)
        slot = key_slot(probe.encode())
        wait_for(lambda s=slot, v=victim: rcluster.master_of_slot(s) not in (None, v),
                 30, "the replica to be promoted", interval=0.1)
        promoted_at = time.time()
        lost = writer.lost(rcluster)
        time.sleep(2)  # traffic after the promotion: it must be admitted again
        traffic.stop()
        accepted = traffic.check()
        down = [t - killed_at for t in traffic.unavailable()]
        late = [d for d in down if d > promoted_at - killed_at + 2.5]
        rcluster.spawn(victim)  # it rejoins, as a replica of its old replica
        runs = settled(stack, redis_client, accepted)
        print(f"\nround {round_}: master :{victim} SIGKILLed; replica promoted after "
              f"{promoted_at - killed_at:.2f} s; {len(down)} answers 503 (last "
              f"{max(down, default=0):.2f} s after the kill); acknowledged writes lost: "
              f"{lost[0]} over {lost[1] * 1000:.1f} ms; {len(runs)} runs, "
              f"{sum(r['status'] == RunStatus.LOST for r in runs.values())} ended lost")
        assert not late, f"503s long after the promotion: {late}"
        writer.halt.set()
        wait_for(rcluster.healthy, 60, "the cluster to be whole", interval=0.2)


@full_only
def test_a_graceful_cluster_failover_loses_nothing(stack, rcluster, redis_client):
    for round_ in range(1, ROUNDS + 1):
        probe = keys_of(stack.config).slot("probe")
        master = rcluster.master_of_slot(key_slot(probe.encode()))
        assert master is not None
        replica = rcluster.replica_of(master)
        assert replica is not None
        writer, traffic = writing_and_triggering(stack, rcluster)
        started = time.time()
        rcluster.node(replica).execute_command("CLUSTER", "FAILOVER")
        slot = key_slot(probe.encode())
        wait_for(lambda s=slot, r=replica: rcluster.master_of_slot(s) == r, 20,
                 "the replica to take over", interval=0.05)
        took = time.time() - started
        lost = writer.lost(rcluster)
        time.sleep(1)  # traffic flows a second past the takeover: the window a 503 would show in
        traffic.stop()
        accepted = traffic.check()
        settled(stack, redis_client, accepted)
        print(f"\nround {round_}: CLUSTER FAILOVER :{master} → :{replica} in {took:.2f} s; "
              f"{len(traffic.unavailable())} answers 503; acknowledged writes lost: {lost}")
        assert lost[0] == 0, lost


@full_only
def test_the_rabbitmq_leader_killed_during_admissions_and_runs(stack, rabbit, redis_client):
    assert rabbit is not None
    for round_ in range(1, ROUNDS + 1):
        traffic = Traffic(stack, seconds=2)
        traffic.start()
        wait_for(lambda t=traffic: len(t.answers) > 10, 20, "traffic to flow")
        leader = rabbit.leader_of(stack.config["TEST_RUN_QUEUE"])
        leader.kill()
        killed_at = time.time()
        time.sleep(4 if FULL else 2)  # admissions and runs go on past the kill
        traffic.stop()
        accepted = traffic.check()
        leader.start().wait_ready()
        runs = settled(stack, redis_client, accepted)
        never = [rid for rid, r in runs.items() if r["started_at"] is None
                 and r["status"] != RunStatus.CANCELLED]
        down = [t - killed_at for t in traffic.unavailable()]
        print(f"\nround {round_}: RabbitMQ leader {leader.name} SIGKILLed; {len(down)} "
              f"answers 503; {len(accepted)} admitted, {len(never)} never started "
              f"({[runs[r]['error_type'] for r in never]})")
        assert not never, [runs[r] for r in never]


def test_a_slot_migration_stalled_past_the_ttl_fences_the_run(stack, rcluster, redis_client):
    """One key of the probe workflow's slot is moved to another master and the migration left
    there: every script on that workflow gets TRYAGAIN, the heartbeat cannot renew, the worker
    kills the body before the lease lapses, and once the migration completes the run reads
    `lost` and the slot is taken by the next run only."""
    keys = keys_of(stack.config)
    _, code, first = stack.trigger("probe", {"mode": "sleep", "seconds": 25})
    assert code == 202, first
    rid = first["run_id"]
    wait_for(lambda: stack.run(rid)[1]["status"] == RunStatus.RUNNING, 20, "the run to start")
    pid = wait_for(lambda: [e["pid"] for e in body_events(redis_client, stack.config, rid)],
                   10, "the body to start")[0]
    slot = key_slot(keys.slot("probe").encode())
    source = rcluster.master_of_slot(slot)
    target = next(p for p in rcluster.masters() if p != source)
    assert source is not None
    src, dst = rcluster.node(source), rcluster.node(target)
    dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", rcluster.node_id(source))
    src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", rcluster.node_id(target))
    stalled_at = time.time()
    src.execute_command("MIGRATE", rcluster.host, target, "", 0, 5000, "AUTH",
                        rcluster.password, "KEYS", keys.events("probe", rid))
    wait_for(lambda: not alive(pid), HEARTBEAT_TTL + 5, "the worker to fence the run")
    fenced = time.time() - stalled_at
    lease_left = src.pttl(keys.slot("probe"))

    def lapsed() -> bool:
        try:
            return not src.exists(keys.slot("probe"))
        except redis.exceptions.AskError:  # gone from the migrating slot's source: lapsed
            return True

    wait_for(lapsed, HEARTBEAT_TTL + 5, "the lease to lapse")
    # the migration completes: the rest of the slot's keys, then the slot's new owner
    while True:
        batch = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100)
        if not batch:
            break
        src.execute_command("MIGRATE", rcluster.host, target, "", 0, 5000, "AUTH",
                            rcluster.password, "KEYS", *batch)
    for port in rcluster.masters() + [source, target]:
        rcluster.node(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE",
                                            rcluster.node_id(target))
    run = wait_for(lambda: (lambda r: r[1] if r[0] == 200 else None)(stack.run(rid, web=1)),
                   20, "the run to be readable")
    print(f"\nmigration stalled: body killed {fenced:.2f} s in, the lease then had "
          f"{lease_left} ms left (TTL {HEARTBEAT_TTL:g} s); the run reads {run['status']}")
    assert lease_left > 0, "the body outlived its lease"
    assert run["status"] == RunStatus.LOST and run["error_type"] == ErrorType.HEARTBEAT_LOST
    _, code, second = stack.trigger("probe", {"mode": "succeed"}, web=1)
    assert code == 202, second
    wait_for(lambda: stack.ended(second["run_id"]), 20, "the next run")
    settled(stack, redis_client, [rid, second["run_id"]])
