"""Chaos: the Redis master dies under Sentinel while runs execute and triggers keep coming.

A real master, replica and three sentinels (tests/support/sentinel.py); gunicorn and a prefork
worker on `sentinel://…` URLs (tracking, broker and result backend all on the failing Redis).
Checks: 503 only while the sentinels have no new master, 202 again afterwards from the same
processes; every accepted run ends with a status that says why; no slot stays held; no body
runs twice; and the window of writes lost with the master (the only way a body could run twice)
is measured and printed."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

import pytest
import redis

from devtools.redis_server import redis_binary
from tests.support import tracking
from tests.support.api import DEFAULT_REDIS_URL, body_events, delete_prefix, make_config
from tests.support.http import request
from tests.support.procs import Gunicorn, Worker, wait_for
from tests.support.sentinel import SentinelCluster
from worker.core.status import TERMINAL, RunStatus

pytestmark = [pytest.mark.cluster_tracking, tracking.single_redis_only(
    "Sentinel fails one Redis over; a cluster fails its masters over itself (a master "
    "SIGKILLed, CLUSTER FAILOVER: tests/chaos/test_cluster_hosts.py)")]

#: requests that started this long after the sentinels named the new master must not be 503:
#: the web's next connection asks the sentinels (a request already waiting on the dead master
#: can take up to its ~2 s of timeouts to give up)
AFTER_FAILOVER_SLACK = 2.5
WORKFLOWS = [f"soak-{i:02d}" for i in range(6)]


class Writer(threading.Thread):
    """INCRs a counter on the master as fast as it answers, recording when each reply came:
    after the failover, the acknowledged writes missing on the new master are the ones the
    replica never received — the window a lost write (a start, a pop) could re-run a body."""

    def __init__(self, cluster: SentinelCluster) -> None:
        super().__init__(daemon=True)
        self.client = cluster.node(cluster.master_port)
        self.acks: list[tuple[int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.acks.append((int(self.client.incr("lag-probe")), time.time()))
            except redis.RedisError:
                return
            time.sleep(0.001)


def test_master_dies_mid_run_and_the_service_follows_the_failover(redis_client):
    if redis_binary() is None:
        pytest.skip("Sentinel failover test skipped: no redis-server binary to run sentinels")
    cluster = SentinelCluster().start()
    config = make_config(**cluster.env(), TEST_RUN_HEARTBEAT_TTL="9", TEST_RUN_TIME_LIMIT="20",
                         TEST_RUN_SOFT_TIME_LIMIT="18",
                         TEST_BODY_LOG_URL=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    worker = gunicorn = None
    try:
        worker = Worker(config, concurrency=3).wait_ready()
        gunicorn = Gunicorn(config, workers=1, threads=4).wait_ready()
        url = gunicorn.url

        def trigger(workflow_id: str, body: dict[str, Any]) -> tuple[float, int, Any]:
            t = time.time()
            code, answer = request("POST", f"{url}/api/workflows/{workflow_id}/test-runs",
                                   {"input": body})
            return t, code, answer

        t, code, long_run = trigger("probe", {"mode": "sleep", "seconds": 8})
        assert code == 202, long_run
        wait_for(lambda: request("GET", f"{url}/api/test-runs/{long_run['run_id']}")[1]
                 ["status"] == RunStatus.RUNNING, 15, "the long run to start")
        writer = Writer(cluster)
        writer.start()
        wait_for(lambda: len(writer.acks) > 50, 5, "the lag probe to write")

        answers: list[tuple[float, int, Any]] = []
        killed_at = cluster.kill_master()  # the writer's next INCR fails and it stops
        failover_at: float | None = None
        deadline = time.monotonic() + 40
        n = 0
        # trigger round the workflows until the service has answered 202 well after failover
        while time.monotonic() < deadline:
            if failover_at is None and cluster.master_port_now() == cluster.replica_port:
                failover_at = time.time()
            answers.append(trigger(WORKFLOWS[n % len(WORKFLOWS)], {"mode": "succeed"}))
            n += 1
            if failover_at and answers[-1][0] > failover_at + AFTER_FAILOVER_SLACK + 1 and \
                    sum(1 for a in answers if a[1] == 202 and a[0] > failover_at) >= 3:
                break
            time.sleep(0.1)
        assert failover_at is not None, "the sentinels never promoted the replica\n" + \
            cluster.logs()
        codes = Counter(code for _, code, _ in answers)
        print(f"\nfailover: {failover_at - killed_at:.2f}s after the kill; answers {codes}")
        print([(round(t - killed_at, 2), c) for t, c, _ in answers])
        assert set(codes) <= {202, 409, 503}, answers
        unavailable = [(t, a) for t, code, a in answers if code == 503]
        assert unavailable, "no trigger met the failover (503 expected while it lasts)"
        assert all(a["error"] == "queue_unavailable" for _, a in unavailable)
        late = [t - failover_at for t, _ in unavailable if t > failover_at + AFTER_FAILOVER_SLACK]
        assert not late, f"503 after the failover (seconds after it): {late}"
        assert any(code == 202 and t > failover_at for t, code, _ in answers)

        # the window: acknowledged writes the promoted replica never got
        writer.join(10)
        promoted = int(cluster.node(cluster.replica_port).get("lag-probe") or 0)
        last_value, last_ack = writer.acks[-1]
        lost = [at for value, at in writer.acks if value > promoted]
        window = (last_ack - lost[0]) if lost else 0.0
        print(f"lost with the master: {last_value - promoted} of {last_value} acknowledged "
              f"writes, spanning {window * 1000:.1f} ms before it died "
              f"({(killed_at - last_ack) * 1000:.1f} ms before the kill)")

        # every accepted run ends, with a reason when it did not succeed
        accepted = [long_run["run_id"]] + [a["run_id"] for _, code, a in answers if code == 202]

        def ended(run_id: str) -> dict[str, Any] | None:
            code, run = request("GET", f"{url}/api/test-runs/{run_id}")
            return run if code == 200 and run["status"] in TERMINAL else None

        runs = {rid: wait_for(lambda rid=rid: ended(rid), 45, f"run {rid} to end")
                for rid in accepted}
        for run in runs.values():
            if run["status"] != RunStatus.SUCCEEDED:
                assert run["error_type"] and run["error"], run
        print("outcomes:", Counter(r["status"] for r in runs.values()),
              "long run:", runs[long_run["run_id"]]["status"],
              runs[long_run["run_id"]]["error"])
        assert runs[long_run["run_id"]]["status"] in (RunStatus.SUCCEEDED, RunStatus.LOST)

        # no slot held, and the next trigger is admitted
        def all_free() -> bool:
            code, listing = request("GET", f"{url}/api/workflows")
            return code == 200 and not any(w["active_run_id"] for w in listing["workflows"])

        wait_for(all_free, 20, "every slot to be free")
        t, code, again = trigger(WORKFLOWS[0], {"mode": "succeed"})
        assert code == 202, again

        # no body ran twice
        starts = Counter(e["run_id"] for e in body_events(redis_client, config)
                         if e["event"] == "start")
        twice = [rid for rid, count in starts.items() if count > 1]
        assert not twice, f"bodies that ran twice: {twice} (lost-write window {window:.3f}s)"

        # the URLs carry passwords: every process printed them masked
        printed = worker.log() + gunicorn.log()
        assert "sentinel://:**@" in printed
        assert cluster.password not in printed and cluster.sentinel_password not in printed
    finally:
        if gunicorn:
            gunicorn.kill_group()
        if worker:
            worker.kill_group()
        cluster.stop()
        delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])
