"""The API's own rules, explored: hypothesis sends triggers carrying any mix of client
mistakes (a foreign Host, no or a wrong token, a bad id, an oversized body, malformed JSON, an
oversized input, an unknown workflow) through the Flask test client, with cancels, reads and a
worker stand-in that calls the task's real entry points in-process (tasks.execute, then the
signal handler that records the outcome). It checks that each answer is the first check that
fails in the documented order (400 host → 401 → 400 → 413 → 400 body → 413 input → 404 → 422
input → 409 → 503 → 202) and that no client mistake takes a slot or writes a run.

The broker is the private Redis; a second app on the same Redis and prefix has a broker that
refuses connections, for the 503 path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.exceptions import Ignore
from flask import Flask
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from devtools.redis_server import RedisServer, free_port
from tests.model.settings import machine_settings
from tests.support.procs import TEST_WORKFLOWS
from web import create_app
from worker.core.celery_app import TASK_NAME
from worker.core.keys import Keys
from worker.core.settings import Settings
from worker.core.status import TERMINAL, RunStatus
from worker.runner import signals, tasks
from worker.runner.app import create_worker_app

TOKEN = "model-token"
WORKFLOWS = ("echo", "fail")
#: a client mistake → the answer it must get, in the order the checks run
CHECKS = (("foreign_host", 400), ("no_token", 401), ("wrong_token", 401), ("bad_id", 400),
          ("huge_body", 413), ("bad_json", 400), ("huge_input", 413), ("unknown", 404),
          ("bad_input", 422))
MISTAKES = tuple(name for name, _ in CHECKS)

APPS: dict[str, Any] = {}
EXPLORED = {"examples": 0, "steps": 0}


def _request(mistakes: frozenset[str], workflow: str, broker_down: bool,
             ) -> tuple[Flask, str, dict[str, str], bytes]:
    """The app, path, headers and body of a trigger carrying `mistakes`."""
    app = APPS["down" if broker_down else "up"]
    headers = {"Content-Type": "application/json"}
    if "foreign_host" in mistakes:
        headers["Host"] = "evil.example"
    if "wrong_token" in mistakes:
        headers["Authorization"] = "Bearer not-the-token"
    elif "no_token" not in mistakes:
        headers["Authorization"] = f"Bearer {TOKEN}"
    target = workflow
    if "unknown" in mistakes:
        target = "no-such-workflow"
    if "bad_id" in mistakes:
        target = "-bad"
    # both workflows declare an input schema (worker/workflows/examples.py): echo any object,
    # fail {"message": str}; a number where fail wants text does not fit it
    body: Any = {"input": {"message": "m"}}
    if "bad_input" in mistakes:
        target = "fail" if target == workflow else target
        body = {"input": {"message": 1}}
    if "huge_input" in mistakes:
        body = {"input": {"pad": "x" * 20_000}}
    raw = json.dumps(body).encode()
    if "bad_json" in mistakes:
        raw = b'{"input": {'
    if "huge_body" in mistakes:
        raw = b'{"input": {"pad": "' + b"x" * 70_000 + b'"}}'
    return app, f"/api/workflows/{target}/test-runs", headers, raw


class HttpMachine(RuleBasedStateMachine):
    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        EXPLORED["examples"] += 1
        self.raw: redis.Redis = APPS["raw"]
        self.raw.flushall()
        self.keys: Keys = APPS["keys"]
        self.live: dict[str, str | None] = dict.fromkeys(WORKFLOWS)  # workflow → live run
        self.status: dict[str, RunStatus] = {}

    def _slots(self) -> dict[str, str | None]:
        return {w: self.raw.get(self.keys.slot(w)) for w in WORKFLOWS}

    def _run_keys(self) -> set[str]:
        return set(self.raw.scan_iter(match=f"{self.keys.prefix}:*:run:*", count=1000))

    @rule(target=runs, mistakes=st.frozensets(st.sampled_from(MISTAKES), max_size=3),
          workflow=st.sampled_from(WORKFLOWS), broker_down=st.booleans())
    def trigger(self, mistakes: frozenset[str], workflow: str, broker_down: bool) -> Any:
        expected = next((code for name, code in CHECKS if name in mistakes), None)
        if expected is None:
            expected = 409 if self.live[workflow] else 503 if broker_down else 202
        slots, records = self._slots(), self._run_keys()
        app, path, headers, raw = _request(mistakes, workflow, broker_down)
        resp = app.test_client().post(path, data=raw, headers=headers)
        assert resp.status_code == expected, (
            f"{sorted(mistakes)} broker_down={broker_down} busy={self.live[workflow]}: "
            f"{resp.status_code} {resp.get_data(as_text=True)[:300]}, expected {expected}")
        if expected != 202:
            assert self._slots() == slots, f"{resp.status_code} changed a slot"
        if expected not in (202, 503):
            assert self._run_keys() == records, f"{resp.status_code} wrote a run"
        if expected == 503:  # its run was written, then ended: nothing held
            assert len(self._run_keys() - records) == 1
        if expected != 202:
            return multiple()  # nothing for the bundle
        run_id = resp.get_json()["run_id"]
        self.live[workflow] = run_id
        self.status[run_id] = RunStatus.QUEUED
        return run_id

    @rule(run=runs, again=st.booleans())
    def worker_runs_it(self, run: str, again: bool) -> None:
        """The worker stand-in: the task's start check and body (tasks.execute) in this
        process, then the outcome through the signal handler, as a pool child would."""
        task = APPS["worker"].tasks[TASK_NAME]
        for _ in range(2 if again else 1):  # again: a duplicate delivery after it ran
            task.push_request(id=run, hostname="standin@host")
            try:
                result = tasks.execute(task, run)
            except Ignore:
                assert self.status[run] in TERMINAL or again, f"{run} refused while queued"
                continue
            except Exception as exc:  # noqa: BLE001 - the `fail` workflow raises
                signals.on_failure(sender=task, task_id=run, exception=exc)
                self._ended(run, RunStatus.FAILED)
            else:
                signals.on_success(sender=task, result=result)
                self._ended(run, RunStatus.SUCCEEDED)
            finally:
                task.pop_request()

    @rule(run=runs)
    def cancel(self, run: str) -> None:
        resp = APPS["up"].test_client().post(f"/api/test-runs/{run}/cancel",
                                             headers={"Authorization": f"Bearer {TOKEN}"})
        if self.status[run] in TERMINAL:
            assert resp.status_code == 409, resp.get_data(as_text=True)
        else:
            assert resp.status_code == 202, resp.get_data(as_text=True)
            self._ended(run, RunStatus.CANCELLED)

    def _ended(self, run: str, status: RunStatus) -> None:
        self.status[run] = status
        workflow = run.rsplit("-", 1)[0]
        if self.live[workflow] == run:
            self.live[workflow] = None

    @invariant()
    def runs_read_as_the_model_says(self) -> None:
        client = APPS["up"].test_client()
        for run, status in self.status.items():
            resp = client.get(f"/api/test-runs/{run}",
                              headers={"Authorization": f"Bearer {TOKEN}"})
            assert resp.status_code == 200 and resp.get_json()["status"] == status.value, (
                run, status, resp.get_json())

    @invariant()
    def slots_held_by_live_runs_only(self) -> None:
        EXPLORED["steps"] += 1
        assert self._slots() == self.live


@pytest.fixture(scope="module")
def http_apps() -> Iterator[None]:
    server = RedisServer().start()
    prefix = "h"
    config = {"REDIS_URL": server.url, "TEST_RUN_KEY_PREFIX": prefix, "TEST_RUN_QUEUE": prefix,
              "API_TOKEN": TOKEN, "WORKFLOW_MODULES": TEST_WORKFLOWS,
              "TEST_RUN_IO_TIMEOUT": "0.2"}
    APPS.update(
        up=create_app(config),
        down=create_app(dict(config, CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")),
        worker=create_worker_app(Settings.from_env(overrides=config)),
        raw=server.client(), keys=Keys(prefix))
    yield
    APPS.clear()
    server.stop()


# a failing case is shrunk before it is reported: that may take minutes, and a readable
# counterexample is worth them (the passing CI size takes well under a minute)
@pytest.mark.timeout(900)
def test_http_machine(http_apps: None) -> None:
    run_state_machine_as_test(HttpMachine, settings=machine_settings(scale=0.25))
    print(f"HTTP machine: {EXPLORED['examples']} examples, "
          f"{EXPLORED['steps'] - EXPLORED['examples']} steps")
