"""`?wait=<seconds>` through a real gunicorn and prefork worker: a trigger or a read answers as
soon as the run ends (200, the whole run) or when the wait is over (202 on a trigger, 200 on a
read); waiters are bounded per process and wait on a Redis pool of their own (counted with
CLIENT LIST); a client that goes away frees its waiter within one keep-alive."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request

import pytest

from tests.support.http import request
from tests.support.procs import Gunicorn, Worker, wait_for
from worker.core.status import RunStatus

pytestmark = pytest.mark.cluster_tracking

MAX_WAITERS = 2


@pytest.fixture(scope="module")
def stack(redis_client):
    from tests.support.api import delete_prefix, make_config

    config = make_config(TEST_RUN_TIME_LIMIT="30", TEST_RUN_SOFT_TIME_LIMIT="25",
                         TEST_RUN_STREAM_KEEPALIVE="1", TEST_RUN_MAX_WAIT="10",
                         TEST_RUN_MAX_WAITERS=str(MAX_WAITERS))
    worker = Worker(config, concurrency=2).wait_ready()
    server = Gunicorn(config, workers=1, threads=8).wait_ready()
    yield server, config
    server.kill_group()
    worker.kill_group()
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


def timed(method: str, url: str, body=None):
    began = time.monotonic()
    status, answer = request(method, url, body)
    return status, answer, time.monotonic() - began


def waiter_connections(redis_client, config) -> int:
    name = f"{config['TEST_RUN_KEY_PREFIX']}-waiters"
    return sum(1 for c in redis_client.client_list() if c.get("name") == name)


def test_a_trigger_that_waits_answers_200_as_soon_as_the_run_ends(stack):
    server, _ = stack
    status, run, took = timed("POST", f"{server.url}/api/workflows/sleep/test-runs?wait=10",
                              {"input": {"seconds": 1}})
    assert status == 200, run
    assert run["status"] == RunStatus.SUCCEEDED and run["result"] == {"slept": 1.0}
    assert 1.0 <= took < 4, took


def test_a_trigger_whose_wait_runs_out_answers_202_with_the_run_as_it_is(stack):
    server, _ = stack
    status, run, took = timed("POST", f"{server.url}/api/workflows/sleep/test-runs?wait=2",
                              {"input": {"seconds": 20}})
    assert status == 202 and run["status"] in (RunStatus.QUEUED, RunStatus.RUNNING), run
    assert 1.9 <= took < 5, took
    status, again, took = timed("GET", f"{server.url}/api/test-runs/{run['run_id']}?wait=1")
    assert status == 200 and again["status"] == RunStatus.RUNNING and took >= 0.9
    assert request("POST", f"{server.url}/api/test-runs/{run['run_id']}/cancel")[0] == 202
    status, ended, took = timed("GET", f"{server.url}/api/test-runs/{run['run_id']}?wait=5")
    assert status == 200 and ended["status"] == RunStatus.CANCELLED and took < 1


@pytest.mark.parametrize("wait", ["0", "-1", "soon", "10.5", "nan"])
def test_a_wait_out_of_range_is_400_and_takes_nothing(stack, wait):
    server, _ = stack
    status, body = request("POST", f"{server.url}/api/workflows/echo/test-runs?wait={wait}",
                           {"input": {}})
    assert status == 400 and body["field"] == "wait", body
    status, body = request("GET", f"{server.url}/api/test-runs/echo-{'0' * 32}?wait={wait}")
    assert status == 400 and body["field"] == "wait", body
    assert request("GET", f"{server.url}/api/workflows/echo")[1]["active_run_id"] is None


def raw_wait(server, run_id: str, seconds: float) -> socket.socket:
    """A waiting read sent by hand, so the test can drop the connection without a word."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(f"GET /api/test-runs/{run_id}?wait={seconds} HTTP/1.1\r\n"
                 f"Host: 127.0.0.1\r\n\r\n".encode())
    return sock


def test_waiters_are_bounded_on_a_pool_of_their_own_and_a_client_that_leaves_frees_its_own(
        stack, redis_client):
    server, config = stack
    status, run = request("POST", f"{server.url}/api/workflows/hang/test-runs", {"input": {}})
    assert status == 202
    url = f"{server.url}/api/test-runs/{run['run_id']}"
    held = [raw_wait(server, run["run_id"], 9) for _ in range(MAX_WAITERS)]
    try:
        wait_for(lambda: waiter_connections(redis_client, config) == MAX_WAITERS, 10,
                 "each waiter blocking on a connection of the waiters' pool")
        # one more is answered at once, with the run as it is and when to come back
        with urllib.request.urlopen(url + "?wait=9", timeout=5) as resp:
            began = time.monotonic()
            assert resp.status == 200 and resp.headers["Retry-After"]
        # the request path's pool is untouched: a read and a trigger answer at once
        status, body, took = timed("GET", url)
        assert status == 200 and took < 1
        status, body, took = timed("POST", f"{server.url}/api/workflows/echo/test-runs",
                                   {"input": {}})
        assert status == 202 and took < 1
        assert waiter_connections(redis_client, config) <= MAX_WAITERS

        held.pop().close()  # gone without a word: found between two waits of a keep-alive
        began = time.monotonic()

        def accepted() -> bool:
            status, body, took = timed("GET", url + "?wait=1.5")
            return took >= 1.4  # it waited: a waiter was free
        wait_for(accepted, 8, "the waiter of the client that left to be free", interval=0.2)
        assert time.monotonic() - began < 6
    finally:
        for sock in held:
            sock.close()
        request("POST", f"{url}/cancel")


def test_waiting_threads_do_not_starve_triggers(stack):
    """Waiters beyond the bound cost no thread for long: many at once all answer."""
    server, _ = stack
    status, run = request("POST", f"{server.url}/api/workflows/hang/test-runs", {"input": {}})
    url = f"{server.url}/api/test-runs/{run['run_id']}?wait=2"
    results: list[float] = []
    threads = [threading.Thread(target=lambda: results.append(timed("GET", url)[2]))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert len(results) == 6
    assert sum(1 for took in results if took >= 1.9) <= MAX_WAITERS
    request("POST", f"{server.url}/api/test-runs/{run['run_id']}/cancel")


def test_a_waiter_on_a_pending_run_answers_when_a_newer_queue_trigger_supersedes_it(
        stack, redis_client):
    """`superseded` ends a wait like every other ending: the waiter blocked on the pending
    run's stream (seen blocked in CLIENT LIST) answers 200 as soon as the newer trigger lands."""
    server, config = stack
    trigger = f"{server.url}/api/workflows/hang/test-runs"
    # an earlier test's cancelled `hang` keeps the slot until its body is gone (strict
    # single-flight): start from a free slot
    wait_for(lambda: request("GET", f"{server.url}/api/workflows/hang")[1]["active_run_id"]
             is None, 10, "the earlier hang run's body to be gone")
    status, holder = request("POST", trigger, {"input": {}})
    assert status == 202, holder
    status, first = request("POST", f"{trigger}?on_conflict=queue", {"input": {"n": 1}})
    assert status == 202 and first["status"] == RunStatus.PENDING, first
    name = f"{config['TEST_RUN_KEY_PREFIX']}-waiters"
    answers: list[tuple[int, dict, float]] = []
    waiter = threading.Thread(target=lambda: answers.append(
        timed("GET", f"{server.url}/api/test-runs/{first['run_id']}?wait=8")))
    waiter.start()
    newer = ""
    try:
        wait_for(lambda: any(c.get("name") == name and "b" in c.get("flags", "")
                             for c in redis_client.client_list()), 5, "the waiter to block")
        status, second = request("POST", f"{trigger}?on_conflict=queue", {"input": {"n": 2}})
        assert status == 202 and second["status"] == RunStatus.PENDING, second
        newer = second["run_id"]
        waiter.join(10)
        assert answers, "the waiter did not answer"
        status, ended, took = answers[0]
        assert status == 200 and ended["status"] == RunStatus.SUPERSEDED, ended
        assert ended["superseded_by"] == newer
        assert took < 6, took  # the ending woke it, not the end of its 8 s wait
    finally:
        waiter.join(10)
        if newer:
            request("POST", f"{server.url}/api/test-runs/{newer}/cancel")
        request("POST", f"{server.url}/api/test-runs/{holder['run_id']}/cancel")
