"""Many hosts, and a partition: 2 gunicorn processes and 2 workers, each worker on a host of its
own (a network namespace joined by a veth pair to the root namespace, where Redis — broker,
tracking and the bodies' log — listens). Host A's link is cut while it runs a test run.

Checks: A's run is fenced (its process killed) before its lease lapses; the slot is free
within TEST_RUN_HEARTBEAT_TTL of the cut; the run reads `lost`; host B takes the next trigger;
and when the link comes back nothing runs twice and nothing comes back to life. Skips, saying
why, where namespaces cannot be made (not root). Namespaces and links are removed whatever
happens."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import redis

from tests.support import tracking
from tests.support.api import body_events, keys_of, make_config
from tests.support.http import request
from tests.support.netns import Hosts, SharedRedis, unavailable
from tests.support.procs import (
    BIN,
    Gunicorn,
    Proc,
    Worker,
    alive,
    base_env,
    holds_throughout,
    wait_for,
)
from worker.core.status import ErrorType, RunStatus

HEARTBEAT_TTL = 6.0

pytestmark = [pytest.mark.cluster_tracking, tracking.single_redis_only(
    "its hosts reach one Redis across veth links; a worker cut off from its workflow's "
    "cluster master, fenced before its lease lapses, is the stalled migration of "
    "tests/chaos/test_cluster_hosts.py")]


class HostWorker(Worker):
    """A prefork worker started inside host i's namespace (same PID space: the test sees and
    kills its processes as usual)."""

    def __init__(self, env: Mapping[str, str], prefix: list[str], name: str) -> None:
        self.name = f"{name}-{uuid.uuid4().hex[:6]}"
        self.hostname = f"{self.name}@test"  # unique per worker: docs/operations.md says why
        full_env = base_env(env)
        argv = prefix + [str(BIN / "celery"), "-A", "worker", "worker", "--pool", "prefork",
                         "--concurrency", "1", "-E", "--without-gossip", "--without-mingle",
                         "--queues", full_env["TEST_RUN_QUEUE"], "--hostname", self.hostname,
                         "--loglevel", "INFO"]
        Proc.__init__(self, argv, full_env, self.name)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    why = unavailable()
    if why:
        pytest.skip(f"partition test skipped: {why}")
    made = Hosts(2)
    try:
        yield made.create()
    finally:
        made.remove()
        assert not made.leftovers(), f"namespaces or links left behind: {made.leftovers()}"


def test_a_cut_host_is_fenced_and_the_other_host_takes_over(hosts: Hosts) -> None:
    shared = SharedRedis(hosts)
    procs: list[Proc] = []
    try:
        config = make_config(REDIS_URL=shared.url(), TEST_RUN_HEARTBEAT_TTL=str(HEARTBEAT_TTL),
                             TEST_RUN_TIME_LIMIT="40", TEST_RUN_SOFT_TIME_LIMIT="38")

        def on_host(i: int) -> dict[str, str]:
            url = shared.url(hosts.gateway(i))
            return dict(config, REDIS_URL=url)

        webs = [Gunicorn(config, workers=1, threads=4) for _ in range(2)]
        procs += webs
        for web in webs:
            web.wait_ready()
        a = HostWorker(on_host(0), hosts.prefix(0), "host-a")
        procs.append(a)
        a.wait_ready(60)
        client = redis.Redis.from_url(shared.url(), decode_responses=True)

        def run(web: Gunicorn, run_id: str) -> dict[str, Any]:
            code, body = request("GET", f"{web.url}/api/test-runs/{run_id}")
            assert code == 200, body
            return body

        # host A runs the long run; then host B joins
        code, first = request("POST", f"{webs[0].url}/api/workflows/probe/test-runs",
                              {"input": {"mode": "sleep", "seconds": 30}})
        assert code == 202, first
        rid = first["run_id"]
        wait_for(lambda: run(webs[1], rid)["status"] == RunStatus.RUNNING, 20, "A to start it")
        assert run(webs[1], rid)["worker"] == a.hostname
        # the body records its own start just after the start script made the run running
        started = wait_for(lambda: [e for e in body_events(client, config, rid)
                                    if e["event"] == "start"] or None, 10, "A's body to start")
        assert len(started) == 1
        body_pid = started[0]["pid"]
        b = HostWorker(on_host(1), hosts.prefix(1), "host-b")
        procs.append(b)
        b.wait_ready(60)

        # cut A's link; the lease A last renewed lapses at `lapses_at` (Redis' view)
        slot = keys_of(config).slot("probe")
        hosts.cut(0)
        cut_at = time.time()
        lapses_at = cut_at + max(0, client.pttl(slot)) / 1000
        wait_for(lambda: not alive(body_pid), HEARTBEAT_TTL + 5, "A to fence its run")
        fenced_at = time.time()
        slot_alive_at_fence = client.exists(slot)
        wait_for(lambda: not client.exists(slot), HEARTBEAT_TTL + 5, "the slot to lapse")
        freed_at = time.time()
        print(f"\ncut → fenced {fenced_at - cut_at:.2f}s, lease lapsed "
              f"{lapses_at - cut_at:.2f}s, slot free {freed_at - cut_at:.2f}s "
              f"(TTL {HEARTBEAT_TTL:g}s)")
        assert fenced_at < lapses_at and slot_alive_at_fence, "fenced only after the lapse"
        assert freed_at - cut_at <= HEARTBEAT_TTL + 0.5
        lost = run(webs[1], rid)
        assert lost["status"] == RunStatus.LOST, lost
        assert lost["error_type"] == ErrorType.HEARTBEAT_LOST and lost["error"]

        # host B takes the next trigger, through the other web process
        code, second = request("POST", f"{webs[1].url}/api/workflows/probe/test-runs",
                               {"input": {"mode": "sleep", "seconds": 1}})
        assert code == 202, second
        done = wait_for(lambda: (lambda r: r if r["status"] == RunStatus.SUCCEEDED else None)(
            run(webs[0], second["run_id"])), 30, "B to run the next trigger")
        assert done["worker"] == b.hostname

        # the link comes back: A reconnects; nothing re-runs, nothing comes back to life
        hosts.restore(0)
        code, third = request("POST", f"{webs[0].url}/api/workflows/probe/test-runs",
                              {"input": {"mode": "succeed"}})
        assert code == 202, third
        wait_for(lambda: run(webs[0], third["run_id"])["status"] == RunStatus.SUCCEEDED, 30,
                 "a run after the link came back")

        def settled() -> bool:
            return (run(webs[0], rid)["status"] == RunStatus.LOST
                    and not client.exists(slot))

        holds_throughout(settled, 2 * HEARTBEAT_TTL / 3 + 1,
                         "the lost run staying lost with its slot free")
        starts: dict[str, int] = {}
        for event in body_events(client, config):
            if event["event"] == "start":
                starts[event["run_id"]] = starts.get(event["run_id"], 0) + 1
        assert starts == {rid: 1, second["run_id"]: 1, third["run_id"]: 1}, starts
        assert a.alive() and b.alive(), "a worker exited over the partition"
    finally:
        for proc in procs:
            proc.kill_group()
        shared.stop()
