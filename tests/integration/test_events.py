"""GET /api/test-runs/<id>/events through a real gunicorn and prefork worker: the state first,
then each status change and log line as it is written, then the end; resuming after
Last-Event-ID; the per-process stream limit, and a client that goes away freeing its slot."""

from __future__ import annotations

import pytest

from tests.support.api import keys_of
from tests.support.http import request
from tests.support.procs import Gunicorn, Worker, wait_for
from tests.support.sse import EventStream
from worker.core.settings import Settings
from worker.core.status import EventKind, RunStatus
from worker.core.store import RunStore

pytestmark = pytest.mark.cluster_tracking


@pytest.fixture
def web(config):
    env = dict(config, TEST_RUN_STREAM_KEEPALIVE="1", TEST_RUN_MAX_STREAMS="2",
               TEST_RUN_MAX_STREAMS_PER_CLIENT="3", TEST_RUN_TIME_LIMIT="10",
               TEST_RUN_SOFT_TIME_LIMIT="8")
    worker = Worker(env, concurrency=2).wait_ready()
    server = Gunicorn(env, workers=1, threads=4).wait_ready()
    yield server
    server.kill_group()
    worker.kill_group()


def start(web, workflow: str, input: dict) -> str:
    status, run = request("POST", f"{web.url}/api/workflows/{workflow}/test-runs",
                          {"input": input})
    assert status == 202, run
    return run["run_id"]


def test_a_run_streams_its_state_changes_logs_and_end(web):
    run_id = start(web, "echo", {"a": 1})
    with EventStream(f"{web.url}/api/test-runs/{run_id}/events") as stream:
        assert stream.status == 200
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Cache-Control"] == "no-cache"
        events = list(stream.events())
    assert events[0].event == "run" and events[0].data["run_id"] == run_id
    assert events[-1].event == "end"
    assert events[-1].data["status"] == RunStatus.SUCCEEDED
    assert events[-1].data["result"] == {"a": 1}
    seen = [e.data["status"] for e in events if e.event == EventKind.STATUS]
    # the snapshot may already hold the first statuses; what follows is in order, once each
    order = [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    assert seen == order[len(order) - len(seen):]
    logs = [e.data["line"] for e in events if e.event == EventKind.LOG]
    assert logs + events[0].data["logs"] and all("echoing 1 field" in x
                                                 for x in logs + events[0].data["logs"])
    assert [e.id for e in events[1:-1]] == sorted(e.id for e in events[1:-1])


def test_log_lines_arrive_while_the_run_is_still_going(web):
    run_id = start(web, "sleep", {"seconds": 3})
    with EventStream(f"{web.url}/api/test-runs/{run_id}/events") as stream:
        events = list(stream.events())
    lines = [e for e in events if e.event == EventKind.LOG]
    assert len([e for e in lines if "slept" in e.data["line"]]) >= 2
    end = events[-1]
    assert end.event == "end" and end.data["status"] == RunStatus.SUCCEEDED
    assert end.received - lines[0].received > 1.5, "log lines came only at the end"


def test_resuming_after_last_event_id_sends_only_what_followed(web):
    run_id = start(web, "sleep", {"seconds": 2})
    with EventStream(f"{web.url}/api/test-runs/{run_id}/events") as stream:
        first = []
        for event in stream.events():
            first.append(event)
            if event.event == EventKind.LOG:
                break
    with EventStream(f"{web.url}/api/test-runs/{run_id}/events",
                     {"Last-Event-ID": first[-1].id}) as stream:
        rest = list(stream.events())
    assert rest[0].event != "run", "a resumable position got the snapshot again"
    assert rest[-1].event == "end" and rest[-1].data["status"] == RunStatus.SUCCEEDED
    assert not {e.id for e in first} & {e.id for e in rest[:-1]}
    # an id that is not in the stream gets the state again first
    with EventStream(f"{web.url}/api/test-runs/{run_id}/events",
                     {"Last-Event-ID": "not-an-id"}) as stream:
        again = list(stream.events())
    assert [e.event for e in again] == ["run", "end"]


@pytest.mark.parametrize("last_event_id", ["\u00b2-0", "\u0661-\u0660", "1-\u00b9", "-", "0x1-0",
                                           "1" * 21 + "-0", " 1-0", "1-0\x00"])
def test_a_last_event_id_that_is_not_ascii_digits_starts_from_the_beginning(idle_client,
                                                                          last_event_id):
    """`str.isdigit` took `²` for a digit and `int` did not: a 500 with a traceback."""
    run_id = idle_client.post("/api/workflows/echo/test-runs").get_json()["run_id"]
    idle_client.post(f"/api/test-runs/{run_id}/cancel")
    resp = idle_client.get(f"/api/test-runs/{run_id}/events",
                           headers={"Last-Event-ID": last_event_id}, buffered=True)
    assert resp.status_code == 200
    names = [line[7:] for line in resp.get_data(as_text=True).splitlines()
             if line.startswith("event: ")]
    assert names[0] == "run" and names[-1] == "end"


def test_unknown_run_is_404_json(web):
    with EventStream(f"{web.url}/api/test-runs/echo-{'0' * 32}/events") as stream:
        assert stream.status == 404
        assert stream.json()["error"] == "test_run_not_found"


def test_streams_beyond_the_limit_are_503_and_a_client_that_leaves_frees_its_slot(web):
    run_id = start(web, "hang", {})
    url = f"{web.url}/api/test-runs/{run_id}/events"
    first, second = EventStream(url), EventStream(url)
    assert (first.status, second.status) == (200, 200)
    with EventStream(url) as third:
        assert third.status == 503
        assert third.headers["Retry-After"]
        assert third.json()["error"] == "too_many_streams"
    first.close()  # goes away without a word: noticed at the next keep-alive write

    def accepted() -> bool:
        with EventStream(url) as again:
            return again.status == 200
    wait_for(accepted, 10, "the slot of the client that left to be free", interval=0.5)
    second.close()
    # triggers and reads were never starved meanwhile
    assert request("GET", f"{web.url}/api/test-runs/{run_id}")[0] == 200


def test_one_client_holds_at_most_its_share_of_the_streams(config):
    """4 streams a process, 2 a client: one client that never reads could hold all 4, and
    everyone else got 503 for its run's lifetime."""
    env = dict(config, TEST_RUN_MAX_STREAMS="4", TEST_RUN_MAX_STREAMS_PER_CLIENT="2",
               TEST_RUN_STREAM_KEEPALIVE="1", API_TOKENS="alice:tok-alice-123,bob:tok-bob-456")
    server = Gunicorn(env, workers=1, threads=8).wait_ready()
    alice, bob = ({"Authorization": f"Bearer {t}"} for t in ("tok-alice-123", "tok-bob-456"))
    try:
        status, run = request("POST", f"{server.url}/api/workflows/echo/test-runs", None, alice)
        url = f"{server.url}/api/test-runs/{run['run_id']}/events"  # queued: no worker
        held = [EventStream(url, alice), EventStream(url, alice)]
        assert [s.status for s in held] == [200, 200]
        with EventStream(url, alice) as third:
            assert third.status == 429 and third.headers["Retry-After"] == "5"
            assert third.json()["error"] == "too_many_client_streams"
        held += [EventStream(url, bob), EventStream(url, bob)]  # the others still get theirs
        assert [s.status for s in held[2:]] == [200, 200]
        with EventStream(url, bob) as fifth:
            assert fifth.status == 429  # bob's share, before the process' limit
        held.pop(0).close()
        wait_for(lambda: (lambda s: s.close() or s.status == 200)(EventStream(url, alice)), 10,
                 "alice's freed stream to be hers again", interval=0.5)
        for stream in held:
            stream.close()
    finally:
        server.kill_group()


def test_a_lapsed_lease_ends_the_stream(config):
    """No worker: the queued run's lease lapses and the stream's own read settles it."""
    env = dict(config, TEST_RUN_STREAM_KEEPALIVE="1", TEST_RUN_QUEUE_TIMEOUT="1",
               TEST_RUN_LEASE_GRACE="1")
    server = Gunicorn(env, workers=1, threads=2).wait_ready()
    try:
        run_id = start(server, "echo", {})
        with EventStream(f"{server.url}/api/test-runs/{run_id}/events") as stream:
            events = list(stream.events())
        assert events[-1].event == "end" and events[-1].data["status"] == RunStatus.EXPIRED
        assert stream.comments >= 1
    finally:
        server.kill_group()


def test_repeated_scripts_write_no_second_status_event(config, redis_client):
    store = RunStore(Settings.from_env(overrides=config))
    admitted = store.admit("echo", {})
    run_id = admitted.run_id  # type: ignore[union-attr]
    store.start(run_id, "w@test")
    store.start(run_id, "w@test")  # a retry after a late reply
    store.append_log(run_id, "x" * 10_000)
    assert store.finish(run_id, RunStatus.SUCCEEDED, result=1)
    assert not store.finish(run_id, RunStatus.SUCCEEDED, result=1)
    store.get(run_id)
    events = redis_client.xrange(keys_of(config).events("echo", run_id))
    statuses = [f["status"] for _, f in events if f["kind"] == EventKind.STATUS]
    assert statuses == [RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED]
    line = next(f["line"] for _, f in events if f["kind"] == EventKind.LOG)
    assert len(line) < 4200 and line.endswith("characters cut]")
    ttl = redis_client.ttl(keys_of(config).events("echo", run_id))
    assert 0 < ttl <= store.settings.retention
