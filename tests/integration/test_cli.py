"""The operator CLI, `python -m worker list|release|reconcile|check`, run as a real subprocess
against the test's private key prefix; its JSON output is what an operator reads."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.support.api import active_run_id, keys_of, run_of, trigger
from tests.support.procs import BIN, ROOT, base_env
from worker.core.keys import new_run_id
from worker.core.status import ErrorType, ReleaseReason, RunStatus

MODULE = [sys.executable, "-m", "worker"]
CONSOLE_SCRIPT = [str(BIN / "testruns")]


def cli(config: dict[str, str], *args: str, program: list[str] = MODULE) -> Any:
    proc = subprocess.run([*program, *args], env=base_env(config),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


# -- list --------------------------------------------------------------------------------------

@pytest.mark.parametrize("program", [MODULE, CONSOLE_SCRIPT], ids=["python -m worker",
                                                                   "testruns"])
def test_list_is_empty_when_no_slot_is_held(config, program):
    assert cli(config, "list", program=program) == {"workers": [], "slots": []}


def test_list_shows_a_queued_holder(idle_client, config):
    run = trigger(idle_client, "echo")
    slots = cli(config, "list")["slots"]
    assert len(slots) == 1
    slot = slots[0]
    assert slot["workflow_id"] == "echo"
    assert slot["run_id"] == run["run_id"]
    assert slot["status"] == RunStatus.QUEUED
    assert slot["worker"] is None and slot["last_heartbeat_at"] is None
    lease = float(config["TEST_RUN_QUEUE_TIMEOUT"]) + float(config["TEST_RUN_LEASE_GRACE"])
    assert 0 < slot["lease_left_s"] <= lease
    assert 0 <= slot["age_s"] < 30


def test_list_shows_holders_of_several_workflows_sorted(idle_client, config):
    sleep = trigger(idle_client, "sleep")
    echo = trigger(idle_client, "echo")
    slots = cli(config, "list")["slots"]
    assert [(s["workflow_id"], s["run_id"]) for s in slots] == [
        ("echo", echo["run_id"]), ("sleep", sleep["run_id"])]


# -- release -----------------------------------------------------------------------------------

def test_release_frees_the_slot_and_records_it_as_forced(idle_client, config, redis_client):
    run = trigger(idle_client, "echo")
    out = cli(config, "release", "echo")
    assert out == {"workflow_id": "echo", "released_run_id": run["run_id"]}

    assert not redis_client.exists(keys_of(config).slot("echo"))
    released = run_of(idle_client, run["run_id"])
    assert released["status"] == RunStatus.CANCELLED
    assert released["release_reason"] == ReleaseReason.FORCED
    assert released["released_at"] is not None
    assert active_run_id(idle_client, "echo") is None
    assert cli(config, "list") == {"workers": [], "slots": []}

    follow = trigger(idle_client, "echo", expect=202)
    assert active_run_id(idle_client, "echo") == follow["run_id"]


def test_release_of_a_free_slot_releases_nothing(idle_client, config):
    other = trigger(idle_client, "sleep")
    assert cli(config, "release", "echo") == {"workflow_id": "echo", "released_run_id": None}
    assert active_run_id(idle_client, "sleep") == other["run_id"]  # another workflow untouched
    assert run_of(idle_client, other["run_id"])["status"] == RunStatus.QUEUED


# -- reconcile ---------------------------------------------------------------------------------

def test_reconcile_frees_ended_holders_and_settles_runs_without_a_slot(idle_client, config,
                                                                       redis_client):
    k = keys_of(config)
    ended = trigger(idle_client, "echo")      # its record says failed; the slot was not freed
    redis_client.hset(k.run("echo", ended["run_id"]), "status", RunStatus.FAILED)
    orphan = trigger(idle_client, "sleep")    # queued, but its slot key is gone
    redis_client.delete(k.slot("sleep"))
    ghost = new_run_id("hang")                # a slot whose holder has no record at all
    redis_client.set(k.slot("hang"), ghost, px=60_000)
    live = trigger(idle_client, "fail")       # a healthy queued holder: left alone

    out = cli(config, "reconcile")
    assert sorted(out["freed_slots"]) == sorted([ended["run_id"], ghost])
    assert out["settled_runs"] == [f"{orphan['run_id']}: expired"]

    assert not redis_client.exists(k.slot("echo"))
    assert not redis_client.exists(k.slot("hang"))
    freed = run_of(idle_client, ended["run_id"])
    assert freed["status"] == RunStatus.FAILED  # a terminal status never changes
    assert freed["release_reason"] == ReleaseReason.RECLAIMED and freed["released_at"] is not None
    settled = run_of(idle_client, orphan["run_id"])
    assert settled["status"] == RunStatus.EXPIRED
    assert settled["error_type"] == ErrorType.QUEUE_TIMEOUT
    assert settled["release_reason"] == ReleaseReason.LEASE_EXPIRED
    assert redis_client.get(k.slot("fail")) == live["run_id"]
    assert run_of(idle_client, live["run_id"])["status"] == RunStatus.QUEUED

    # nothing is left to do: a second pass changes nothing
    assert cli(config, "reconcile") == {"freed_slots": [], "promoted_runs": [],
                                         "republished_runs": [], "settled_runs": [],
                                         "endings_handed_over": []}
    assert trigger(idle_client, "echo", expect=202)["status"] == RunStatus.QUEUED


# -- check -------------------------------------------------------------------------------------

def test_check_is_ok_on_a_noeviction_redis(config, redis_client):
    policy = redis_client.config_get("maxmemory-policy").get("maxmemory-policy")
    if policy != "noeviction":
        pytest.skip(f"this Redis runs maxmemory-policy {policy!r}")
    assert cli(config, "check") == {"ok": True, "warning": None}


# -- the SCAN patterns vs. client-chosen Idempotency-Keys --------------------------------------
# `prefix:{*}:slot` and `prefix:{*}:runs` also match `prefix:{<wf>}:idem:<key>` when the key
# (any printable text, chosen by the API client) ends in "}:slot" or "}:runs": the CLI must
# skip such keys (Keys.workflow_in).

def test_list_ignores_idempotency_keys_that_look_like_slots(idle_client, config):
    run = trigger(idle_client, "echo", headers={"Idempotency-Key": "x}:slot"})
    assert idle_client.post(f"/api/test-runs/{run['run_id']}/cancel").status_code == 202
    assert active_run_id(idle_client, "echo") is None
    assert cli(config, "list") == {"workers": [], "slots": []}


def test_reconcile_keeps_idempotency_keys_that_look_like_slots(idle_client, config,
                                                               redis_client):
    run = trigger(idle_client, "echo", headers={"Idempotency-Key": "x}:slot"})
    assert idle_client.post(f"/api/test-runs/{run['run_id']}/cancel").status_code == 202
    out = cli(config, "reconcile")
    assert redis_client.get(keys_of(config).idempotency("echo", "x}:slot")) == run["run_id"]
    assert out == {"freed_slots": [], "promoted_runs": [],
                                         "republished_runs": [], "settled_runs": [],
                                         "endings_handed_over": []}
    again = idle_client.post("/api/workflows/echo/test-runs",
                             headers={"Idempotency-Key": "x}:slot"})
    assert again.status_code == 200 and again.get_json()["run_id"] == run["run_id"]


def test_reconcile_survives_idempotency_keys_that_look_like_indexes(idle_client, config):
    trigger(idle_client, "echo", headers={"Idempotency-Key": "x}:runs"})
    assert cli(config, "reconcile") == {"freed_slots": [], "promoted_runs": [],
                                         "republished_runs": [], "settled_runs": [],
                                         "endings_handed_over": []}


# -- alive -------------------------------------------------------------------------------------

def cli_exit(config: dict[str, str], *args: str) -> tuple[int, Any]:
    proc = subprocess.run([*MODULE, *args], env=base_env(config), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    return proc.returncode, json.loads(proc.stdout)


def test_alive_is_a_workers_liveness_probe_that_never_blames_it_for_redis(config):
    """0 while the worker advertises; 1 once its advertisement lapsed (it died) or for a name
    never seen; 0 with `alive: null` when Redis cannot be read (no restart for an outage)."""
    from devtools.redis_server import free_port
    from tests.support.procs import Worker, wait_for

    worker = Worker(config, concurrency=1).wait_ready()
    try:
        code, answer = wait_for(lambda: (lambda r: r if r[0] == 0 else None)(
            cli_exit(config, "alive", worker.hostname)), 10, "the worker to advertise")
        assert answer["alive"] is True and answer["expires_in_s"] > 0
        assert cli_exit(config, "alive", "nobody@nowhere") == \
            (1, {"hostname": "nobody@nowhere", "alive": False, "expires_in_s": None})
        down = dict(config, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
        code, answer = cli_exit(down, "alive", worker.hostname)
        assert code == 0 and answer["alive"] is None and "redis" in answer["why"]
        worker.kill_group()  # no clean shutdown: the advertisement lapses with its TTL (3 s)
        wait_for(lambda: cli_exit(config, "alive", worker.hostname)[0] == 1, 10,
                 "the dead worker's advertisement to lapse")
    finally:
        worker.kill_group()
