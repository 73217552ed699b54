"""The operator CLI and the pending run (on_conflict=queue): `list` shows each workflow's
pending run beside its holder; `reconcile` repairs a promotion a crash cut off halfway (the run
promoted, its message never published: `publish_due`), publishing it — and promotes a pending
run whose slot's lease lapsed."""

from __future__ import annotations

from tests.integration.test_cli import cli
from tests.support.api import keys_of, run_of, store_of, trigger
from web import create_app
from worker.core.status import RunStatus

QUEUE = {"on_conflict": "queue"}


def test_list_shows_the_pending_run(idle_client, config):
    holder = trigger(idle_client, "echo", {})["run_id"]
    waiting = trigger(idle_client, "echo", {"a": 1}, query_string=QUEUE)["run_id"]
    (slot,) = cli(config, "list")["slots"]
    assert slot["run_id"] == holder and slot["pending_run"]["run_id"] == waiting
    assert slot["pending_run"]["status"] == RunStatus.PENDING


def test_reconcile_publishes_a_promotion_a_crash_cut_off(config, redis_client):
    # the two-step path: no message is stored on the pending run; a process that frees the
    # slot publishes the promoted run right after — here it "crashes" first (no publisher)
    config = dict(config, TEST_RUN_FUSED_ADMISSION="false")
    idle_client = create_app(config).test_client()
    store = store_of(config)
    holder = trigger(idle_client, "echo", {})["run_id"]
    waiting = trigger(idle_client, "echo", {"a": 1}, query_string=QUEUE)["run_id"]
    assert store.publisher is None
    store.finish(holder, RunStatus.SUCCEEDED)  # frees the slot: the pending run takes it
    keys = keys_of(config)
    assert redis_client.get(keys.slot("echo")) == waiting
    assert redis_client.hget(keys.run("echo", waiting), "publish_due") == "1"
    queue = config["TEST_RUN_QUEUE"]
    before = redis_client.llen(queue)
    out = cli(config, "reconcile")
    assert out["republished_runs"] == [waiting]
    assert redis_client.llen(queue) == before + 1  # its message is out now
    assert redis_client.hget(keys.run("echo", waiting), "publish_due") is None
    assert run_of(idle_client, waiting)["status"] == RunStatus.QUEUED
    assert cli(config, "reconcile")["republished_runs"] == []  # done once


def test_reconcile_promotes_a_pending_run_whose_slot_lapsed(idle_client, config, redis_client):
    holder = trigger(idle_client, "echo", {})["run_id"]
    waiting = trigger(idle_client, "echo", {"a": 1}, query_string=QUEUE)["run_id"]
    redis_client.delete(keys_of(config).slot("echo"))  # its lease ran out; no worker swept
    out = cli(config, "reconcile")
    assert out["promoted_runs"] == [waiting]
    assert redis_client.get(keys_of(config).slot("echo")) == waiting
    assert run_of(idle_client, holder)["status"] == RunStatus.EXPIRED
