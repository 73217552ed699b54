"""The reliability features around admission: idempotency keys, on_conflict=replace, reclaiming
a slot whose holder already ended (a missed signal), release accounting, the queued lease, and
no double runs when the broker delivers a run's message more than once.

Most tests use `idle_client` (no worker consumes its queue, so runs stay queued) and write the
Redis state a lost signal would leave behind directly; the duplicate-delivery tests start a
real prefork worker on the test's private queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import active_run_id, body_events, run_of, trigger, wait_status, wait_terminal
from tests.support.procs import Worker, wait_for
from web import create_app
from worker.keys import Keys, new_run_id

TRIGGER = "/api/workflows/{}/test-runs"


def keys(config: dict[str, str]) -> Keys:
    return Keys(config["TEST_RUN_KEY_PREFIX"])


def post(client, workflow_id: str, *, key: str | None = None, on_conflict: str | None = None,
         input: dict | None = None):
    path = TRIGGER.format(workflow_id)
    if on_conflict is not None:
        path += f"?on_conflict={on_conflict}"
    headers = {"Idempotency-Key": key} if key is not None else {}
    return client.post(path, json={"input": input or {}}, headers=headers)


def assert_status(resp, status: int) -> dict:
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- Idempotency-Key ---------------------------------------------------------------------------

def test_retried_request_with_the_same_key_returns_the_same_run_with_200(idle_client):
    first = post(idle_client, "echo", key="retry-1", input={"n": 1})
    run = assert_status(first, 202)
    again = post(idle_client, "echo", key="retry-1", input={"n": 1})
    same = assert_status(again, 200)  # not 409: it is the holder itself
    assert same["run_id"] == run["run_id"]
    assert same["status"] == "queued" and same["input"] == {"n": 1}
    assert again.headers["Location"] == f"/api/test-runs/{run['run_id']}"
    # the retry admitted nothing: one run, and it still holds the slot
    runs = idle_client.get(TRIGGER.format("echo")).get_json()["runs"]
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    assert active_run_id(idle_client, "echo") == run["run_id"]


def test_a_different_key_while_the_first_run_holds_the_slot_is_409(idle_client):
    run = assert_status(post(idle_client, "echo", key="key-a"), 202)
    body = assert_status(post(idle_client, "echo", key="key-b"), 409)
    assert body["error"] == "test_run_in_progress"
    assert body["run_id"] == run["run_id"]
    # and the first key still answers with its own run
    assert assert_status(post(idle_client, "echo", key="key-a"), 200)["run_id"] == run["run_id"]


def test_keys_are_scoped_per_workflow(idle_client):
    echo = assert_status(post(idle_client, "echo", key="shared"), 202)
    other = assert_status(post(idle_client, "sleep", key="shared"), 202)
    assert other["run_id"] != echo["run_id"]
    assert other["workflow_id"] == "sleep" and echo["workflow_id"] == "echo"
    assert active_run_id(idle_client, "sleep") == other["run_id"]
    assert active_run_id(idle_client, "echo") == echo["run_id"]


def test_the_key_is_kept_for_the_retention_period(config, redis_client):
    client = create_app(dict(config, TEST_RUN_RETENTION="900")).test_client()
    run = assert_status(post(client, "echo", key="ttl-key"), 202)
    idem = keys(config).idempotency("echo", "ttl-key")
    assert redis_client.get(idem) == run["run_id"]
    ttl = redis_client.ttl(idem)
    assert 890 <= ttl <= 900, ttl


def test_the_default_retention_applies_to_the_key(idle_client, config, redis_client):
    assert_status(post(idle_client, "echo", key="ttl-default"), 202)
    ttl = redis_client.ttl(keys(config).idempotency("echo", "ttl-default"))
    assert 7 * 24 * 3600 - 10 <= ttl <= 7 * 24 * 3600, ttl


def test_a_request_without_a_key_stores_no_key(idle_client, config, redis_client):
    run = trigger(idle_client, "echo")
    idle_client.post(f"/api/test-runs/{run['run_id']}/cancel")
    assert list(redis_client.scan_iter(match=keys(config).idempotency("echo", "*"))) == []


def test_a_key_returns_its_run_even_after_the_run_ended(idle_client):
    run = assert_status(post(idle_client, "echo", key="ended"), 202)
    assert idle_client.post(f"/api/test-runs/{run['run_id']}/cancel").status_code == 202
    again = assert_status(post(idle_client, "echo", key="ended"), 200)
    assert again["run_id"] == run["run_id"] and again["status"] == "cancelled"
    assert active_run_id(idle_client, "echo") is None  # the retry took no slot


def test_a_retried_replace_does_not_replace_again(idle_client):
    holder = trigger(idle_client, "echo")
    new = assert_status(post(idle_client, "echo", key="rep", on_conflict="replace"), 202)
    retry = assert_status(post(idle_client, "echo", key="rep", on_conflict="replace"), 200)
    assert retry["run_id"] == new["run_id"] and retry["status"] == "queued"
    assert run_of(idle_client, new["run_id"])["status"] == "queued"
    assert run_of(idle_client, holder["run_id"])["status"] == "cancelled"
    assert active_run_id(idle_client, "echo") == new["run_id"]


# -- on_conflict -------------------------------------------------------------------------------

def test_replace_cancels_a_queued_holder_and_admits_the_new_run(idle_client, config,
                                                                redis_client):
    old = trigger(idle_client, "echo", {"v": "old"})
    resp = post(idle_client, "echo", on_conflict="replace", input={"v": "new"})
    new = assert_status(resp, 202)
    assert new["run_id"] != old["run_id"]
    assert new["status"] == "queued" and new["input"] == {"v": "new"}

    replaced = run_of(idle_client, old["run_id"])
    assert replaced["status"] == "cancelled"
    assert replaced["error_type"] == "cancelled"
    assert replaced["release_reason"] == "replaced"
    assert new["run_id"] in replaced["error"]
    assert replaced["released_at"] is not None and replaced["finished_at"] is not None
    assert active_run_id(idle_client, "echo") == new["run_id"]
    assert redis_client.get(keys(config).slot("echo")) == new["run_id"]


def test_replace_with_a_free_slot_just_admits(idle_client):
    run = assert_status(post(idle_client, "echo", on_conflict="replace"), 202)
    assert active_run_id(idle_client, "echo") == run["run_id"]
    assert run_of(idle_client, run["run_id"])["release_reason"] is None


def test_explicit_reject_is_409_and_leaves_the_holder(idle_client):
    holder = trigger(idle_client, "echo")
    body = assert_status(post(idle_client, "echo", on_conflict="reject"), 409)
    assert body["error"] == "test_run_in_progress" and body["run_id"] == holder["run_id"]
    assert run_of(idle_client, holder["run_id"])["status"] == "queued"
    assert active_run_id(idle_client, "echo") == holder["run_id"]


# -- reclaim on proof of death -----------------------------------------------------------------

def test_a_holder_that_already_ended_is_reclaimed_by_the_next_trigger(idle_client, config,
                                                                      redis_client):
    k = keys(config)
    old = trigger(idle_client, "echo")
    # a missed signal: the record says the run ended, but nobody freed the slot
    redis_client.hset(k.run("echo", old["run_id"]), "status", "failed")
    assert redis_client.get(k.slot("echo")) == old["run_id"]

    new = trigger(idle_client, "echo", expect=202)
    assert new["run_id"] != old["run_id"]
    reclaimed = run_of(idle_client, old["run_id"])
    assert reclaimed["status"] == "failed"  # a terminal status never changes
    assert reclaimed["release_reason"] == "reclaimed"
    assert reclaimed["released_at"] is not None
    assert redis_client.get(k.slot("echo")) == new["run_id"]


def test_a_slot_whose_holder_record_is_gone_is_reclaimed(idle_client, config, redis_client):
    k = keys(config)
    ghost = new_run_id("echo")
    redis_client.set(k.slot("echo"), ghost, px=60_000)
    assert active_run_id(idle_client, "echo") == ghost

    new = trigger(idle_client, "echo", expect=202)
    assert new["run_id"] != ghost
    assert redis_client.get(k.slot("echo")) == new["run_id"]
    assert not redis_client.exists(k.run("echo", ghost))  # nothing written for the ghost


def test_a_live_holder_is_not_reclaimed(idle_client, config, redis_client):
    k = keys(config)
    old = trigger(idle_client, "echo")
    redis_client.hset(k.run("echo", old["run_id"]), "status", "running")
    body = assert_status(post(idle_client, "echo"), 409)
    assert body["run_id"] == old["run_id"]
    assert redis_client.get(k.slot("echo")) == old["run_id"]


# -- release accounting ------------------------------------------------------------------------

def test_a_cancelled_run_records_why_and_when_its_slot_was_freed(idle_client, config,
                                                                 redis_client):
    run = trigger(idle_client, "echo")
    assert run_of(idle_client, run["run_id"])["released_at"] is None
    resp = idle_client.post(f"/api/test-runs/{run['run_id']}/cancel")
    assert resp.status_code == 202
    done = run_of(idle_client, run["run_id"])
    assert done["status"] == "cancelled"
    assert done["release_reason"] == "cancelled"
    assert done["released_at"] is not None
    assert parse_iso(done["released_at"]) >= parse_iso(done["created_at"])
    assert not redis_client.exists(keys(config).slot("echo"))


def test_workflow_shows_its_active_run_while_queued(idle_client):
    run = trigger(idle_client, "echo")
    wf = idle_client.get("/api/workflows/echo").get_json()
    assert wf["active_run_id"] == run["run_id"]
    active = wf["active_run"]
    assert set(active) >= {"run_id", "status", "created_at", "last_heartbeat_at"}
    assert active["run_id"] == run["run_id"]
    assert active["status"] == "queued"
    assert active["created_at"] == run["created_at"]
    assert active["last_heartbeat_at"] is None  # no worker has renewed it

    idle_client.post(f"/api/test-runs/{run['run_id']}/cancel")
    after = idle_client.get("/api/workflows/echo").get_json()
    assert after["active_run_id"] is None and "active_run" not in after


# -- queued lease ------------------------------------------------------------------------------

def test_a_queued_slot_lives_for_queue_timeout_plus_grace(idle_client, config, redis_client):
    trigger(idle_client, "echo")
    lease_ms = (float(config["TEST_RUN_QUEUE_TIMEOUT"])
                + float(config["TEST_RUN_LEASE_GRACE"])) * 1000
    pttl = redis_client.pttl(keys(config).slot("echo"))
    assert lease_ms - 2000 < pttl <= lease_ms, pttl


# -- duplicate delivery ------------------------------------------------------------------------

def publish_duplicate(app, config: dict[str, str], run_id: str, **options) -> None:
    """The same task message again, as a broker redelivery or a repeated publish would."""
    app.extensions["celery"].send_task(
        "testruns.run", args=[run_id], task_id=run_id, queue=config["TEST_RUN_QUEUE"],
        ignore_result=True, **options,
    )


def received(worker: Worker, run_id: str) -> int:
    return worker.log().count(f"testruns.run[{run_id}] received")


def ignored(worker: Worker, run_id: str) -> int:
    return worker.log().count(f"testruns.run[{run_id}] ignored")


def test_a_duplicate_delivered_after_the_run_ended_does_not_run_it_again(
        config, idle_app, redis_client):
    client = idle_app.test_client()
    # one pool process: the duplicate is handled before the follow-up run can start
    worker = Worker(config, concurrency=1).wait_ready()
    try:
        rid = trigger(client, "probe", {"mode": "succeed"})["run_id"]
        first = wait_terminal(client, rid)
        assert first["status"] == "succeeded"

        publish_duplicate(idle_app, config, rid)
        follow = trigger(client, "probe", {"mode": "succeed"})
        assert wait_terminal(client, follow["run_id"])["status"] == "succeeded"
        wait_for(lambda: ignored(worker, rid) == 1, 10, "the duplicate to be refused")
        assert received(worker, rid) == 2  # the duplicate really reached the worker
    finally:
        worker.kill_group()

    assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start", "end"]
    after = run_of(client, rid)
    for field in ("status", "started_at", "finished_at", "result", "release_reason",
                  "released_at", "worker"):
        assert after[field] == first[field], field
    assert active_run_id(client, "probe") is None


def test_duplicates_published_while_queued_run_the_body_once(config, idle_app, redis_client):
    client = idle_app.test_client()
    rid = trigger(client, "probe", {"mode": "succeed"})["run_id"]
    publish_duplicate(idle_app, config, rid)
    publish_duplicate(idle_app, config, rid)
    assert redis_client.llen(config["TEST_RUN_QUEUE"]) == 3
    # two pool processes, so two deliveries of the run can race through the start check
    worker = Worker(config, concurrency=2).wait_ready()
    try:
        done = wait_terminal(client, rid)
        wait_for(lambda: ignored(worker, rid) == 2, 10, "both duplicates to be refused")
        assert received(worker, rid) == 3
        follow = trigger(client, "probe", {"mode": "succeed"})
        assert wait_terminal(client, follow["run_id"])["status"] == "succeeded"
    finally:
        worker.kill_group()

    assert done["status"] == "succeeded"
    assert [e["event"] for e in body_events(redis_client, config, rid)].count("start") == 1
    assert run_of(client, rid)["status"] == "succeeded"
    assert active_run_id(client, "probe") is None


def test_an_expired_duplicate_of_a_running_run_leaves_it_running(config, redis_client):
    """Celery discards a duplicate delivered after its `expires` with task_revoked(expired);
    that must not expire (and free the slot of) the run that is executing."""
    # a 2 s queue timeout, so the original message's `expires` passes while the body runs
    config = dict(config, TEST_RUN_QUEUE_TIMEOUT="2", TEST_RUN_TIME_LIMIT="10",
                  TEST_RUN_SOFT_TIME_LIMIT="8")
    app = create_app(config)
    client = app.test_client()
    worker = Worker(config, concurrency=2).wait_ready()
    try:
        run = trigger(client, "probe", {"mode": "sleep", "seconds": 4})
        rid = run["run_id"]
        wait_status(client, rid, "running", timeout=5)
        # the message the service published carries expires = publish time + queue timeout;
        # redeliver that same message once that moment has passed, while the body still runs
        expires = parse_iso(run["created_at"]) + timedelta(
            seconds=float(config["TEST_RUN_QUEUE_TIMEOUT"]))
        wait_for(lambda: datetime.now(UTC) > expires + timedelta(milliseconds=50), 6,
                 "the original message to expire")
        publish_duplicate(app, config, rid, expires=expires)
        wait_for(lambda: f"Discarding revoked task: testruns.run[{rid}]" in worker.log(), 5,
                 "the worker to discard the expired duplicate")
        assert run_of(client, rid)["status"] == "running"
        assert trigger(client, "probe", expect=409)["run_id"] == rid
        done = wait_terminal(client, rid, timeout=10)
        assert done["status"] == "succeeded"
    finally:
        worker.kill_group()
    assert [e["event"] for e in body_events(redis_client, config, rid)] == ["start", "end"]

