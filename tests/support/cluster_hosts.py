"""The multi-host stack of tests/chaos/test_cluster_hosts.py: two web hosts (gunicorn), two worker
hosts (prefork workers), tracking on a 6-node Redis Cluster, the broker a 3-node RabbitMQ cluster
with a quorum queue; traffic over 20 workflows (triggers, cancels, runs) and the invariants
checked after each fault."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from typing import Any

import redis

from tests.chaos.test_soak import check_no_overlap
from tests.support.api import body_events
from tests.support.http import request
from tests.support.procs import Gunicorn, Worker, wait_for
from tests.support.redis_cluster import RedisCluster
from worker.core.status import TERMINAL, RunStatus

WORKFLOWS = [f"soak-{i:02d}" for i in range(20)]
#: what an answer may be while the cluster or the broker fails: admitted, busy, or 503
#: queue_unavailable (retryable); never a 500
ALLOWED = {202, 409, 503}


class Stack:
    """Two web hosts and two worker hosts on the test's config."""

    def __init__(self, config: dict[str, str]) -> None:
        self.config = config
        self.webs: list[Gunicorn] = []
        self.workers: list[Worker] = []
        try:
            self.webs = [Gunicorn(config, workers=1, threads=6) for _ in range(2)]
            for web in self.webs:
                web.wait_ready(60)
            # unique names: a fixed one collided on a RabbitMQ two suites shared (the pidbox
            # queue is exclusive to its worker's hostname)
            self.workers = [Worker(config, concurrency=2, name=f"host{i}-{uuid.uuid4().hex[:6]}")
                            for i in range(2)]
            for worker in self.workers:
                worker.wait_ready(60)
        except BaseException:
            self.close()
            raise

    def url(self, i: int = 0) -> str:
        return self.webs[i % len(self.webs)].url

    def trigger(self, workflow_id: str, body: dict[str, Any], web: int = 0
                ) -> tuple[float, int, Any]:
        """(when, status, answer); status 0 when the web host itself did not answer."""
        t = time.time()
        try:
            code, answer = request(
                "POST", f"{self.url(web)}/api/workflows/{workflow_id}/test-runs",
                {"input": body})
        except OSError as exc:
            return t, 0, repr(exc)
        return t, code, answer

    def run(self, run_id: str, web: int = 0) -> tuple[int, Any]:
        return request("GET", f"{self.url(web)}/api/test-runs/{run_id}")

    def ended(self, run_id: str) -> dict[str, Any] | None:
        code, run = self.run(run_id)
        return run if code == 200 and run["status"] in TERMINAL else None

    def every_run(self) -> list[dict[str, Any]]:
        found = []
        for wf in [*WORKFLOWS, "probe"]:
            code, page = request("GET", f"{self.url()}/api/workflows/{wf}/test-runs?limit=100")
            assert code == 200, page
            found += page["runs"]
        return found

    def logs(self) -> str:
        return "".join(p.log()[-3000:] for p in (*self.webs, *self.workers))

    def close(self) -> None:
        for proc in (*self.webs, *self.workers):
            proc.kill_group()


class Traffic(threading.Thread):
    """Triggers short runs round the 20 workflows through both web hosts, cancels one now and
    then, until stopped (or `limit` requests): every answer is kept with its time."""

    def __init__(self, stack: Stack, limit: int = 3000, seconds: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.stack, self.limit, self.seconds = stack, limit, seconds
        self.answers: list[tuple[float, str, int, Any]] = []  # (time, what, code, body)
        self.halt = threading.Event()
        self.rng = random.Random(18)

    def run(self) -> None:
        n = 0
        while not self.halt.is_set() and n < self.limit:
            wf = WORKFLOWS[n % len(WORKFLOWS)]
            t, code, body = self.stack.trigger(wf, {"mode": "sleep", "seconds": self.seconds},
                                               web=n)
            self.answers.append((t, "trigger", code, body))
            if code == 202 and self.rng.random() < 0.15:
                t = time.time()
                try:
                    code, body = request("POST", f"{self.stack.url(n + 1)}/api/test-runs/"
                                         f"{body['run_id']}/cancel")
                except OSError as exc:
                    code, body = 0, repr(exc)
                self.answers.append((t, "cancel", code, body))
            n += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self.halt.set()
        self.join(60)

    def codes(self) -> Counter[int]:
        return Counter(code for _, _, code, _ in self.answers)

    def unavailable(self) -> list[float]:
        return [t for t, _, code, _ in self.answers if code == 503]

    def check(self) -> list[str]:
        """Every answer allowed, every 503 the retryable queue_unavailable; the runs admitted."""
        bad = [(what, code, body) for _, what, code, body in self.answers
               if code not in ALLOWED and not (what == "cancel" and code == 409)]
        assert not bad, f"answers other than 202/409/503: {bad[:5]}"
        for _, _, code, body in self.answers:
            if code == 503:
                assert body["error"] == "queue_unavailable", body
        return [b["run_id"] for _, what, code, b in self.answers
                if what == "trigger" and code == 202]


def settled(stack: Stack, single: redis.Redis, accepted: list[str]) -> dict[str, dict]:
    """Wait for every accepted run to end; then the invariants: each ended with a reason, no
    slot outlives its run, no body ran twice, never two runs of a workflow at once."""
    runs = {rid: wait_for(lambda rid=rid: stack.ended(rid), 60, f"run {rid} to end",
                          interval=0.2) for rid in accepted}
    everything = stack.every_run()
    for run in everything:
        assert run["status"] in TERMINAL, run
        if run["status"] != RunStatus.SUCCEEDED:
            assert run["error_type"] and run["error"], run
    wait_for(lambda: not any(w["active_run_id"] for w in request(
        "GET", f"{stack.url()}/api/workflows")[1]["workflows"]), 15, "every slot free")
    events = body_events(single, stack.config)
    starts = Counter(e["run_id"] for e in events if e["event"] == "start")
    assert not [rid for rid, n in starts.items() if n > 1], f"bodies run twice: {starts}"
    check_no_overlap(everything, events, {})
    return runs


class Writer(threading.Thread):
    """INCRs a counter on one master as fast as it answers, noting when each reply came: after
    a failover, the acknowledged writes missing on the new master are what asynchronous
    replication lost."""

    def __init__(self, cluster: RedisCluster, key: str) -> None:
        super().__init__(daemon=True)
        self.client, self.key = cluster.client(), key
        self.acks: list[tuple[int, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set() and len(self.acks) < 2_000_000:
            try:
                self.acks.append((int(self.client.incr(self.key)), time.time()))
            except redis.RedisError:
                return
            time.sleep(0.0005)

    def lost(self, cluster: RedisCluster) -> tuple[int, float]:
        """(acknowledged writes lost, their span in seconds) once the new master answers."""
        self.halt.set()
        self.join(10)
        survived = wait_for(lambda: _read(cluster, self.key), 30, "the counter to answer")
        lost = [(n, t) for n, t in self.acks if n > int(survived)]
        return len(lost), (lost[-1][1] - lost[0][1]) if lost else 0.0


def _read(cluster: RedisCluster, key: str) -> str | None:
    try:
        return str(cluster.client().get(key) or 0)
    except redis.RedisError:
        return None
