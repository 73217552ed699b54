"""RabbitMQ as a cluster: three real `rabbitmq-server` nodes on this machine
(tests/support/rabbit_cluster.py), the test-run queue a quorum queue, every process given
kombu's failover list. The lifecycle's core paths pass on it (the same tests as
test_lifecycle.py, collected here against the cluster), and SIGKILLing the queue's leader —
during admissions, and while runs execute — keeps the invariants: never two bodies of a
workflow at once, no slot outliving its run, every accepted run ends with a reason, no message
lost. Each fault test prints what it measured (503s, messages lost, time until runs flow).

The cluster takes ~20 s to form, so the module shares it; each test has its own queue and
prefix. `make test` kills the leader once per fault test; TEST_AMQP_FULL=1 (`make soak`) three
times, with longer admission windows."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.chaos.test_soak import check_no_overlap
from tests.integration.test_lifecycle import (  # noqa: F401 - collected here, on the cluster
    test_cancel_while_queued_never_runs_the_body,
    test_cancel_while_running_stops_the_body_then_frees_the_slot,
    test_echo_succeeds_with_its_result_and_logs,
    test_fail_is_failed_with_error_and_type,
    test_hang_is_ended_by_the_hard_limit,
    test_queued_run_with_no_worker_expires_when_its_lease_runs_out,
    test_run_queued_past_queue_timeout_expires_and_never_runs,
    test_sleep_past_soft_limit_times_out,
)
from tests.support import broker as brokers
from tests.support import rabbit_cluster
from tests.support.api import body_events, delete_prefix, make_config, ts
from tests.support.http import request
from tests.support.procs import Gunicorn, Worker, wait_for
from tests.support.rabbit_cluster import RabbitCluster
from worker.core.status import TERMINAL, RunStatus

pytestmark = pytest.mark.rabbit_cluster

FULL = brokers.amqp_full()
ROUNDS = 3 if FULL else 1  # leader kills per fault test
AFTER_KILL_S = 12.0 if FULL else 4.0  # admissions kept coming after each kill
#: no admission that starts this long after the kill may answer 503
OUTAGE_BOUND_S = 3.0
WORKFLOWS = [f"soak-{i:02d}" for i in range(20)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RabbitCluster]:
    if "amqp" not in brokers.enabled():
        pytest.skip("TEST_BROKERS leaves out amqp: the RabbitMQ cluster tests are skipped")
    if not rabbit_cluster.installed():
        pytest.skip("no rabbitmq-server (Debian's package) here: the cluster tests are skipped")
    started = time.monotonic()
    cluster = RabbitCluster().start()
    print(f"\nRabbitMQ cluster of {len(cluster.nodes)} formed in "
          f"{time.monotonic() - started:.1f}s")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def broker(cluster: RabbitCluster) -> dict[str, str]:
    """conftest's `broker`, overridden: every config in this module names the cluster."""
    return {"CELERY_BROKER_URL": cluster.urls, "TEST_RUN_QUEUE_TYPE": "quorum"}


@pytest.fixture(scope="module")
def session_config(redis_client: redis.Redis, broker: dict[str, str]) -> Iterator[dict[str, str]]:
    config = make_config(**broker)
    yield config
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture(scope="module")
def session_worker(session_config: dict[str, str]) -> Iterator[Worker]:
    worker = Worker(session_config, concurrency=2).wait_ready()
    yield worker
    worker.kill_group()


class Stack:
    """gunicorn on the cluster (its list starts at the first node) and the workers a test
    starts, each given the list starting at a node of the test's choosing: a node's death cuts
    the connections made to it and no other."""

    def __init__(self, cluster: RabbitCluster, config: dict[str, str]) -> None:
        self.cluster, self.config, self.queue = cluster, config, config["TEST_RUN_QUEUE"]
        self.workers: list[Worker] = []
        self.web = Gunicorn(config, workers=1, threads=4).wait_ready()

    def worker(self, first: rabbit_cluster.Node, concurrency: int) -> Worker:
        """A worker whose broker list starts at `first` (so it connects there)."""
        at = self.cluster.nodes.index(first)
        nodes = self.cluster.nodes[at:] + self.cluster.nodes[:at]
        worker = Worker(dict(self.config, CELERY_BROKER_URL=";".join(n.url for n in nodes)),
                        concurrency=concurrency).wait_ready()
        self.workers.append(worker)
        return worker

    def trigger(self, workflow_id: str, body: dict[str, Any]) -> tuple[float, int, Any]:
        t = time.time()
        code, answer = request("POST", f"{self.web.url}/api/workflows/{workflow_id}/test-runs",
                               {"input": body})
        return t, code, answer

    def ended(self, run_id: str) -> dict[str, Any] | None:
        code, run = request("GET", f"{self.web.url}/api/test-runs/{run_id}")
        return run if code == 200 and run["status"] in TERMINAL else None

    def every_run(self) -> list[dict[str, Any]]:
        """Every run of the test's workflows, those whose admission answered 503 included."""
        found = []
        for wf in [*WORKFLOWS, "probe"]:
            code, page = request("GET", f"{self.web.url}/api/workflows/{wf}/test-runs")
            assert code == 200, page
            found += page["runs"]
        return found

    def kill_leader(self) -> tuple[rabbit_cluster.Node, float]:
        leader = self.cluster.leader_of(self.queue)
        leader.kill()
        return leader, time.time()

    def logs(self) -> str:
        return "".join(w.log() for w in self.workers)

    def close(self) -> None:
        for proc in (self.web, *self.workers):
            proc.kill_group()


def admitted(stack: Stack, workflow_id: str, body: dict[str, Any], within: float = 5) -> str:
    """Trigger until admitted (the web answers 503 while its own node is down)."""
    return wait_for(lambda: (lambda a: a[2]["run_id"] if a[1] == 202 else None)(
        stack.trigger(workflow_id, body)), within, f"a {workflow_id} run to be admitted",
        interval=0.1)


@pytest.fixture
def stack(cluster: RabbitCluster, config: dict[str, str]) -> Iterator[Stack]:
    stack = Stack(cluster, dict(config, TEST_RUN_TIME_LIMIT="30",
                                TEST_RUN_SOFT_TIME_LIMIT="25", TEST_RUN_QUEUE_TIMEOUT="20"))
    yield stack
    stack.close()
    for node in cluster.nodes:  # the next test gets the whole cluster again
        if not node.alive():
            node.start().wait_ready()


def settled(stack: Stack, redis_client: redis.Redis, accepted: list[str]) -> dict[str, dict]:
    """Wait for every accepted run to end; then check the invariants on everything written, and
    that the queue drained (the whole cluster up: a quorum queue keeps the deliveries it had
    handed to a dead node's consumers until that node is back, then they come round and are
    refused by the start check)."""
    runs = {rid: wait_for(lambda rid=rid: stack.ended(rid), 45, f"run {rid} to end")
            for rid in accepted}
    everything = stack.every_run()
    for run in everything:  # the 503s' runs too: failed, enqueue_failed
        assert run["status"] in TERMINAL, run
        if run["status"] != RunStatus.SUCCEEDED:
            assert run["error_type"] and run["error"], run
    wait_for(lambda: not any(r["active_run_id"] for r in request(
        "GET", f"{stack.web.url}/api/workflows")[1]["workflows"]), 10, "every slot free")
    events = body_events(redis_client, stack.config)
    starts = Counter(e["run_id"] for e in events if e["event"] == "start")
    assert not [rid for rid, n in starts.items() if n > 1], f"bodies run twice: {starts}"
    check_no_overlap(everything, events, {})
    info = stack.cluster.queue_info(stack.queue)
    assert info["type"] == "quorum" and len(info["members"]) == 3, info  # type: ignore[arg-type]
    wait_for(lambda: (lambda i: (i["messages"], i["messages_unacknowledged"]) == (0, 0))(
        stack.cluster.queue_info(stack.queue)), 20, "the queue to drain")
    return runs


def restart(node: rabbit_cluster.Node) -> None:
    node.start().wait_ready()


@pytest.mark.timeout(600)
def test_the_leader_killed_during_admissions_loses_no_run(stack, redis_client):
    """Admissions keep coming, round the workflows, while the queue's leader is SIGKILLed:
    503 only for a moment, no admitted run lost, none run twice, runs flowing again at once."""
    stack.worker(stack.cluster.nodes[0], 2)
    stack.worker(stack.cluster.nodes[1], 2)
    accepted: list[str] = []
    for round_ in range(1, ROUNDS + 1):
        answers = [stack.trigger(WORKFLOWS[i % 20], {"mode": "sleep", "seconds": 0.2})
                   for i in range(5)]
        leader, killed_at = stack.kill_leader()
        n = 0
        while time.time() < killed_at + AFTER_KILL_S:
            answers.append(stack.trigger(WORKFLOWS[n % 20], {"mode": "sleep", "seconds": 0.2}))
            n += 1
            time.sleep(0.05)
        codes = Counter(code for _, code, _ in answers)
        assert set(codes) <= {202, 409, 503}, answers
        down = [t - killed_at for t, code, a in answers if code == 503]
        assert all(a["error"] == "queue_unavailable" for _, code, a in answers if code == 503)
        assert not [d for d in down if d > OUTAGE_BOUND_S], f"503s after the kill: {down}"
        admitted = [(t, a["run_id"]) for t, code, a in answers if code == 202]
        # with the old leader still down: which admitted runs have not even started?
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(stack.ended(r) for _, r in admitted):
            time.sleep(0.2)
        waiting = [r for _, r in admitted if not stack.ended(r)]
        restart(leader)
        runs = settled(stack, redis_client, [rid for _, rid in admitted])
        accepted += [rid for _, rid in admitted]
        lost = [rid for rid, run in runs.items() if run["started_at"] is None]
        after = [ts(runs[rid]["started_at"]) for t, rid in admitted if t > killed_at]
        flowing = min(after) - killed_at
        print(f"round {round_}: leader {leader.name} killed; {codes[503]} admissions answered "
              f"503 ({', '.join(f'{d:.2f}' for d in down)} s after the kill), "
              f"{codes[202]} admitted, {len(lost)} lost, {len(waiting)} waited for the node's "
              f"return; a run started again {flowing:.2f}s after the kill; "
              f"{stack.logs().count('test run refused')} redeliveries refused so far")
        assert not lost, f"admitted runs whose message was lost: {lost}"
        assert all(run["status"] == RunStatus.SUCCEEDED for run in runs.values())
        assert flowing <= OUTAGE_BOUND_S
    assert len(accepted) >= 20 * ROUNDS


@pytest.mark.timeout(600)
def test_the_leader_killed_while_runs_execute_keeps_them_and_reserves_nothing(stack,
                                                                             redis_client):
    """Worker A (two processes) is connected to the leader's node and runs `busy` long runs;
    worker B (one process) to another node. The leader is SIGKILLed: A's runs go on (their
    redeliveries are refused), and until they end A takes only what its free processes can
    run — runs admitted right after the kill start at once or when a short run ends, never
    reserved behind a long one — and A's whole prefetch is back once they have ended."""
    queue_made = admitted(stack, "probe", {"mode": "succeed"})  # declares the queue
    for round_ in range(1, ROUNDS + 1):
        busy = 2 if round_ % 2 else 1  # leaves A no free process, or one
        leader = stack.cluster.leader_of(stack.queue)
        a = stack.worker(leader, 2)
        long = [admitted(stack, WORKFLOWS[i], {"mode": "sleep", "seconds": 8})
                for i in range(busy)]
        wait_for(lambda long=long: all(request("GET", f"{stack.web.url}/api/test-runs/{rid}")
                                       [1]["status"] == RunStatus.RUNNING for rid in long), 15,
                 "A to start the long runs")
        others = [n for n in stack.cluster.nodes if n is not leader]
        b = stack.worker(others[round_ % 2], 1)
        leader.kill()
        short = [admitted(stack, WORKFLOWS[5 + i], {"mode": "sleep", "seconds": 1})
                 for i in range(3 if busy == 1 else 2)]
        runs = {rid: wait_for(lambda rid=rid: stack.ended(rid), 20, "a short run to end")
                for rid in short}
        waits = [ts(r["started_at"]) - ts(r["created_at"]) for r in runs.values()]
        on_a = [r for r in runs.values() if r["worker"] == a.hostname]
        # once the long runs have ended, A takes two at once again
        wait_for(lambda long=long: all(stack.ended(rid) for rid in long), 15, "the long runs")
        b.kill_group()
        again = [admitted(stack, WORKFLOWS[10 + i], {"mode": "sleep", "seconds": 1})
                 for i in range(2)]
        again_runs = [wait_for(lambda rid=rid: stack.ended(rid), 15, "a run to end")
                      for rid in again]
        restart(leader)
        ended = settled(stack, redis_client, [queue_made, *long, *short, *again])
        logs = a.log()
        print(f"round {round_}: leader {leader.name} killed under {busy} long run(s) on A: "
              f"{logs.count('test run refused')} redelivery(ies) refused by A, "
              f"{sum(w.log().count('test run refused') for w in stack.workers)} in all; the "
              f"runs admitted after the kill waited {', '.join(f'{w:.2f}' for w in waits)} s, "
              f"{len(on_a)} on A")
        for rid in long:  # the broker's loss did not stop them
            assert ended[rid]["status"] == RunStatus.SUCCEEDED, ended[rid]
            assert [e["event"] for e in body_events(redis_client, stack.config, rid)] == \
                ["start", "end"]
        assert max(waits) <= 2.5, waits  # behind a long run it would be 5 s or more
        assert "broker connection lost while" in logs
        # A's free process (one at a time), or nothing while A had none
        spans = sorted((ts(r["started_at"]), ts(r["finished_at"])) for r in on_a)
        assert (len(spans) >= 1) if busy == 1 else not spans, runs
        assert all(nxt[0] >= end - 0.05
                   for (_, end), nxt in zip(spans, spans[1:], strict=False)), spans
        starts = sorted(ts(r["started_at"]) for r in again_runs)
        assert all(r["worker"] == a.hostname for r in again_runs)
        assert starts[1] - starts[0] < 0.9, again_runs  # side by side: full prefetch back
        a.kill_group()
