"""Completion webhooks with a real prefork worker and real HTTP receivers on loopback (allowed
explicitly): one signed delivery per ending — also the endings a Lua script records (a lapsed
lease read, a replace, a pending run superseded, an operator's release) and the ones a process
failed to hand over (found by the heartbeat's sweep and by reconcile) — each verified with
`standardwebhooks`' own verifier; retries with the same `webhook-id`; a receiver that is down
changes no outcome; no redirect followed; the SSRF guard at the trigger and again at the
delivery."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook

from devtools.redis_server import free_port
from tests.support.api import (
    delete_prefix,
    expect_status,
    keys_of,
    make_config,
    trigger,
    wait_status,
    wait_terminal,
)
from tests.support.procs import ROOT, Worker, base_env, holds_throughout, wait_for
from tests.support.receiver import Receiver
from web import create_app
from worker.core import webhooks
from worker.core.status import DeliveryOutcome, RunStatus, WebhookTarget

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture(scope="module")
def operator_receiver() -> Iterator[Receiver]:
    with Receiver([200]) as receiver:
        yield receiver


@pytest.fixture(scope="module")
def stack(redis_client, operator_receiver) -> Iterator[dict[str, str]]:
    """A worker that delivers (its WEBHOOK_ALLOWED_HOSTS: 127.0.0.1 only); the tests' apps
    share its prefix and queues."""
    config = make_config(WEBHOOK_SECRET=SECRET, WEBHOOK_URL=operator_receiver.url,
                         WEBHOOK_ALLOWED_HOSTS="127.0.0.1", WEBHOOK_RETRY_DELAY="0.2",
                         WEBHOOK_MAX_ATTEMPTS="3", WEBHOOK_TIMEOUT="1")
    worker = Worker(config, concurrency=2).wait_ready()
    yield config
    worker.kill_group()
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture
def client(stack):
    return create_app(stack).test_client()  # its process hands endings over (installed last)


def deliveries_to(receiver: Receiver, run_id: str, target: WebhookTarget) -> list[Any]:
    wid = webhooks.webhook_id(run_id, target)
    return [r for r in receiver.received if r.headers.get("webhook-id") == wid]


def verified(request: Any) -> dict[str, Any]:
    """The body, verified as Standard Webhooks says (signature, id and fresh timestamp)."""
    return Webhook(SECRET).verify(request.body, request.headers)


def run_of(client, run_id: str) -> dict[str, Any]:
    return expect_status(client.get(f"/api/test-runs/{run_id}"), 200)


def callback_trigger(client, workflow: str, url: str, expect: int = 202) -> dict[str, Any]:
    resp = client.post(f"/api/workflows/{workflow}/test-runs",
                       json={"input": {}, "callback_url": url})
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def test_every_ending_is_delivered_once_and_signed(stack, client, operator_receiver,
                                                   redis_client):
    runs: dict[str, str] = {}
    runs["ok"] = trigger(client, "echo", {"a": 1})["run_id"]
    runs["raised"] = trigger(client, "fail", {"message": "kaput"})["run_id"]
    runs["hard_limit"] = trigger(client, "hang", {})["run_id"]        # the hard limit: 3 s
    wait_terminal(client, runs["hard_limit"])
    runs["cancel"] = trigger(client, "hang", {})["run_id"]        # recorded by the web
    wait_status(client, runs["cancel"], RunStatus.RUNNING)
    expect_status(client.post(f"/api/test-runs/{runs['cancel']}/cancel"), 202)
    # no worker takes the idle queue's runs: they stay queued until ended over their heads
    idle = create_app(dict(stack, TEST_RUN_QUEUE=stack["TEST_RUN_QUEUE"] + "-idle"))
    idle_client = idle.test_client()
    runs["replace"] = trigger(idle_client, "echo", {})["run_id"]   # admit.lua ends it
    runs["release"] = trigger(idle_client, "echo", {}, query_string={"on_conflict": "replace"})[
        "run_id"]
    cli = subprocess.run([sys.executable, "-m", "worker", "release", "echo"],
                         env=base_env(stack), cwd=ROOT, capture_output=True, text=True,
                         timeout=60)                                  # the CLI records it
    assert json.loads(cli.stdout)["released_run_id"] == runs["release"], cli.stderr
    trigger(idle_client, "say", {})                             # holds say's slot
    runs["supersede"] = trigger(idle_client, "say", {}, query_string={"on_conflict": "queue"})[
        "run_id"]
    trigger(idle_client, "say", {"x": 1}, query_string={"on_conflict": "queue"})  # admit.lua
    runs["lapse"] = trigger(idle_client, "probe", {})["run_id"]
    redis_client.delete(keys_of(stack).slot("probe"))                 # its lease lapses
    create_app(stack)  # (the hook follows the latest app; both hand over alike)
    assert run_of(client, runs["lapse"])["status"] == RunStatus.EXPIRED  # read.lua ends it

    def delivered_all() -> bool:
        return all(deliveries_to(operator_receiver, r, WebhookTarget.WEBHOOK_URL)
                   for r in runs.values())
    wait_for(delivered_all, 30, "one delivery per ending")
    holds_throughout(lambda: all(
        len(deliveries_to(operator_receiver, r, WebhookTarget.WEBHOOK_URL)) == 1
        for r in runs.values()), 1.5, "exactly one delivery per ending")
    expected = {"ok": RunStatus.SUCCEEDED, "raised": RunStatus.FAILED,
                "hard_limit": RunStatus.TIMED_OUT, "cancel": RunStatus.CANCELLED,
                "replace": RunStatus.CANCELLED, "release": RunStatus.CANCELLED,
                "supersede": RunStatus.SUPERSEDED, "lapse": RunStatus.EXPIRED}
    for name, run_id in runs.items():
        (request,) = deliveries_to(operator_receiver, run_id, WebhookTarget.WEBHOOK_URL)
        payload = verified(request)
        assert payload["type"] == "test_run.finished", name
        assert payload["data"]["run_id"] == run_id and payload["data"]["status"] == \
            expected[name], (name, payload["data"])
        assert payload["timestamp"] == payload["data"]["finished_at"]
        assert "deliveries" not in payload["data"]
        assert SECRET not in request.body.decode() and SECRET.removeprefix("whsec_") not in \
            request.body.decode()
    record = run_of(client, runs["ok"])
    assert [d["outcome"] for d in record["deliveries"]] == [DeliveryOutcome.DELIVERED]
    assert SECRET.removeprefix("whsec_") not in json.dumps(record)


def test_a_callback_answering_500_twice_gets_three_attempts_with_one_id(client):
    with Receiver([500, 500, 200]) as receiver:
        run_id = callback_trigger(client, "echo", receiver.url)["run_id"]
        got = receiver.wait_for(3)
        assert {r.headers["webhook-id"] for r in got} == {
            webhooks.webhook_id(run_id, WebhookTarget.CALLBACK_URL)}
        assert len({r.body for r in got}) == 1  # the very same bytes every time
        for request in got:
            assert verified(request)["data"]["run_id"] == run_id

        def listed() -> list[Any]:
            return [d for d in run_of(client, run_id)["deliveries"]
                    if d["target"] == WebhookTarget.CALLBACK_URL]
        entries = wait_for(lambda: len(listed()) == 3 and listed(), 10, "three attempts listed")
        assert [(d["attempt"], d["status_code"], d["outcome"]) for d in entries] == [
            (1, 500, DeliveryOutcome.RETRYING), (2, 500, DeliveryOutcome.RETRYING),
            (3, 200, DeliveryOutcome.DELIVERED)]
        assert run_of(client, run_id)["callback_url"] == receiver.url
        holds_throughout(lambda: len(receiver.received) == 3, 1.0, "no fourth attempt")


def test_a_receiver_down_for_the_whole_window_changes_no_outcome(client):
    down = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    run_id = callback_trigger(client, "echo", down)["run_id"]

    def gave_up() -> list[Any]:
        mine = [d for d in run_of(client, run_id)["deliveries"]
                if d["target"] == WebhookTarget.CALLBACK_URL]
        return mine if mine and mine[-1]["outcome"] == DeliveryOutcome.GAVE_UP else []
    attempts = wait_for(gave_up, 20, "the retry window (3 attempts) to end")
    assert [d["attempt"] for d in attempts] == [1, 2, 3]
    assert all(d["status_code"] is None and d["error"] for d in attempts)
    run = run_of(client, run_id)
    assert run["status"] == RunStatus.SUCCEEDED and run["finished_at"]
    assert client.get("/api/workflows/echo").get_json()["active_run_id"] is None
    again = trigger(client, "echo", {})
    assert again["status"] == RunStatus.QUEUED
    # the module's next test triggers echo too: it must find the slot free, however loaded
    # the machine (this run took 409 from it once, at a load of 9 on 2 cores)
    assert wait_terminal(client, again["run_id"])["status"] == RunStatus.SUCCEEDED


def test_a_redirect_is_not_followed(client):
    with Receiver([302]) as receiver:
        run_id = callback_trigger(client, "echo", receiver.url)["run_id"]
        receiver.wait_for(1)

        def ended() -> list[Any]:
            return [d for d in run_of(client, run_id)["deliveries"]
                    if d["target"] == WebhookTarget.CALLBACK_URL]
        (entry,) = wait_for(ended, 10, "the attempt recorded")
        assert (entry["status_code"], entry["outcome"]) == (302, DeliveryOutcome.GAVE_UP)
        holds_throughout(lambda: [r.path for r in receiver.received] == ["/hook"], 1.0,
                         "nothing sent to the redirect's Location")


@pytest.mark.parametrize("url", ["https://127.0.0.1/hook", "https://169.254.169.254/latest",
                                 "https://10.0.0.1/hook", "https://[::1]/hook",
                                 "http://example.com/hook", "https://user:pw@127.0.0.1/"])
def test_a_callback_url_into_internal_networks_is_422_and_takes_nothing(stack, url):
    client = create_app(dict(stack, WEBHOOK_ALLOWED_HOSTS="")).test_client()
    body = callback_trigger(client, "echo", url, expect=422)
    assert body["error"] == "invalid_callback_url" and body["field"] == "callback_url"
    assert client.get("/api/workflows/echo").get_json()["active_run_id"] is None


def test_a_host_listed_explicitly_is_allowed_and_checked_again_at_delivery(stack, client):
    """The web allows `localhost`; the worker's list no longer has it (as if DNS or the list
    had changed since): the delivery is refused and nothing is sent."""
    web = create_app(dict(stack, WEBHOOK_ALLOWED_HOSTS="127.0.0.1,localhost")).test_client()
    with Receiver([200]) as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        run_id = callback_trigger(web, "echo", url)["run_id"]

        def refused() -> list[Any]:
            return [d for d in run_of(web, run_id)["deliveries"]
                    if d["outcome"] == DeliveryOutcome.REFUSED]
        (entry,) = wait_for(refused, 15, "the delivery refused by the worker's check")
        assert "WEBHOOK_ALLOWED_HOSTS" in entry["error"]
        assert receiver.received == []


def missed(client, workflow: str) -> str:
    """A run whose ending is recorded by a process that dies before it hands it over."""
    hooks, webhooks.HOOKS.webhooks = webhooks.HOOKS.webhooks, None
    try:
        run_id = trigger(client, workflow, {})["run_id"]
        expect_status(client.post(f"/api/test-runs/{run_id}/cancel"), 202)
    finally:
        webhooks.HOOKS.webhooks = hooks
    return run_id


def test_an_ending_a_process_failed_to_hand_over_is_delivered_by_the_heartbeats_sweep(
        stack, client, operator_receiver, redis_client):
    run_id = missed(client, "hang")
    assert redis_client.zscore(keys_of(stack).outbox("hang"), run_id) is not None
    wait_for(lambda: deliveries_to(operator_receiver, run_id, WebhookTarget.WEBHOOK_URL), 20,
             "the sweep to hand the missed ending over")
    holds_throughout(lambda: len(deliveries_to(operator_receiver, run_id,
                                               WebhookTarget.WEBHOOK_URL)) == 1,
                     1.5, "exactly one delivery")
    assert redis_client.zscore(keys_of(stack).outbox("hang"), run_id) is None


def test_reconcile_hands_over_an_ending_a_process_missed(config, redis_client):
    """No worker: reconcile creates the delivery and publishes its task, once."""
    config = dict(config, WEBHOOK_SECRET=SECRET, WEBHOOK_URL="http://127.0.0.1:9/hook")
    client = create_app(config).test_client()
    run_id = missed(client, "echo")

    def reconcile() -> list[str]:
        cli = subprocess.run([sys.executable, "-m", "worker", "reconcile"],
                             env=base_env(config), cwd=ROOT, capture_output=True, text=True,
                             timeout=60)
        assert cli.returncode == 0, cli.stderr
        return json.loads(cli.stdout)["endings_handed_over"]
    assert reconcile() == [run_id]
    wid = webhooks.webhook_id(run_id, WebhookTarget.WEBHOOK_URL)
    assert redis_client.hget(keys_of(config).webhook(wid), "run_id") == run_id
    assert redis_client.llen(config["WEBHOOK_QUEUE"]) == 1  # its task, for a worker
    assert reconcile() == []  # handed over once
    assert redis_client.llen(config["WEBHOOK_QUEUE"]) == 1
