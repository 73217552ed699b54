"""Metrics, JSON logs and worker liveness, as an operator sees them: a real gunicorn (two
workers, multiprocess metrics) and a real prefork worker (its exporter, pool children
aggregated), both with LOG_FORMAT=json, after a known sequence of runs — a success, a failure,
a timeout, a conflict, a cancel — plus a 503 from a web whose broker is down. Every count is
checked exactly, on the endpoint of the process that counted it."""

from __future__ import annotations

import json
import signal
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.redis_server import free_port
from tests.support.api import make_config
from tests.support.http import request
from tests.support.procs import Gunicorn, Worker, wait_for
from worker.client import online
from worker.core.lifecycle import LifecycleHooks
from worker.core.status import TERMINAL, ErrorType, ReleaseReason, RunStatus

TRIGGER_ROUTE = "/api/workflows/<path:workflow_id>/test-runs"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def trigger(url: str, workflow_id: str, input: dict[str, Any], expect: int = 202) -> Any:
    status, body = request("POST", f"{url}/api/workflows/{workflow_id}/test-runs",
                           {"input": input})
    assert status == expect, body
    return body


def wait_run(url: str, run_id: str, statuses: set[RunStatus], timeout: float = 20) -> Any:
    wanted = {s.value for s in statuses}

    def reached() -> Any:
        status, run = request("GET", f"{url}/api/test-runs/{run_id}")
        assert status == 200, run
        return run if run["status"] in wanted else None

    return wait_for(reached, timeout, f"{run_id} to reach {sorted(wanted)}")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line as JSON (a line that is not fails the test, naming it)."""
    out = []
    for line in text.splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                pytest.fail(f"not a JSON log line: {line!r}")
    return out


@pytest.fixture(scope="module")
def stack(redis_client: Any) -> Iterator[dict[str, Any]]:
    from tests.support.api import delete_prefix

    config = make_config(LOG_FORMAT="json")
    worker = Worker(config, concurrency=2).wait_ready()
    web = Gunicorn(config, workers=2, threads=4).wait_ready()
    # a second web on the same keys whose broker is down: its triggers answer 503
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"
    broken = Gunicorn(dict(config, CELERY_BROKER_URL=dead_broker, LOG_FORMAT="text"),
                      workers=1, threads=2).wait_ready()
    try:
        yield {"config": config, "worker": worker, "web": web, "broken": broken}
    finally:
        for proc in (broken, web, worker):
            proc.kill_group()
        delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


@pytest.fixture(scope="module")
def sequence(stack: dict[str, Any]) -> dict[str, str]:
    """success, failure, timeout (soft limit 2 s), conflict + cancel of a running run, 503."""
    url, runs = stack["web"].url, {}
    runs["ok"] = trigger(url, "echo", {"a": 1})["run_id"]
    runs["fail"] = trigger(url, "fail", {})["run_id"]
    # a test workflow, not the bundled `sleep`: that one clamps itself to end before the soft limit
    runs["slow"] = trigger(url, "soak-00", {"mode": "sleep", "seconds": 30})["run_id"]
    runs["cancel"] = trigger(url, "probe", {"mode": "sleep", "seconds": 30})["run_id"]
    conflict = trigger(url, "probe", {}, expect=409)
    assert conflict["run_id"] == runs["cancel"]
    wait_run(url, runs["cancel"], {RunStatus.RUNNING})
    status, cancelled = request("POST", f"{url}/api/test-runs/{runs['cancel']}/cancel")
    assert status == 202, cancelled
    status, body = request("POST", f"{stack['broken'].url}/api/workflows/big/test-runs",
                           {"input": {}})
    assert status == 503 and body["what"] == "broker", body
    for key in ("ok", "fail", "slow", "cancel"):
        wait_run(url, runs[key], set(TERMINAL))
    # the cancelled run's slot passes once its worker confirms the body stopped
    wait_for(lambda: request("GET", f"{url}/api/workflows/probe")[1]["active_run_id"] is None,
             10, "the cancelled body's slot to pass")
    return runs


def test_the_web_counts_admissions_conflicts_cancels_and_latency(stack, sequence):
    m = scrape(stack["web"].url + "/metrics")
    assert {w: value(m, "testrun_admissions_total", workflow=w)
            for w in ("echo", "fail", "soak-00", "probe")} == {
        "echo": 1, "fail": 1, "soak-00": 1, "probe": 1}
    assert value(m, "testrun_conflicts_total", workflow="probe") == 1
    assert value(m, "testrun_cancels_total", workflow="probe") == 1
    # the cancel was recorded by the web, so the web counts that ending; its slot was freed
    # by the worker, once the body had stopped (strict single-flight), and counted there
    assert total(m, "testrun_runs_finished_total") == 1
    assert value(m, "testrun_runs_finished_total", workflow="probe",
                 status=RunStatus.CANCELLED.value, error_type=ErrorType.CANCELLED.value) == 1
    assert total(m, "testrun_slots_released_total") == 0
    assert total(m, "testrun_unavailable_total") == 0
    latency = "testrun_http_request_duration_seconds_count"
    assert value(m, latency, route=TRIGGER_ROUTE, method="POST", status="202") == 4
    assert value(m, latency, route=TRIGGER_ROUTE, method="POST", status="409") == 1
    # (multiprocess mode: the counts are right whichever gunicorn worker answers the scrape)
    assert value(m, "testrun_slots_held") == 0
    assert value(m, "testrun_workers_online") == 1


def test_a_web_whose_broker_is_down_counts_the_503_by_what(stack, sequence):
    m = scrape(stack["broken"].url + "/metrics")
    assert value(m, "testrun_unavailable_total", what="broker") == 1
    assert total(m, "testrun_unavailable_total") == 1
    assert value(m, "testrun_admissions_total", workflow="big") == 1  # taken, then unwound
    assert value(m, "testrun_runs_finished_total", workflow="big",
                 status=RunStatus.FAILED.value, error_type=ErrorType.ENQUEUE_FAILED.value) == 1
    assert value(m, "testrun_slots_released_total",
                 reason=ReleaseReason.PUBLISH_FAILED.value) == 1


def test_the_worker_exporter_adds_up_its_pool_children(stack, sequence):
    m = scrape(stack["worker"].metrics_url)
    assert {w: value(m, "testrun_runs_started_total", workflow=w)
            for w in ("echo", "fail", "soak-00", "probe")} == {
        "echo": 1, "fail": 1, "soak-00": 1, "probe": 1}
    finished = {(dict(labels)["workflow"], dict(labels)["status"], dict(labels)["error_type"]): v
                for (name, labels), v in m.items() if name == "testrun_runs_finished_total" and v}
    assert finished == {
        ("echo", RunStatus.SUCCEEDED.value, ""): 1,
        ("fail", RunStatus.FAILED.value, ErrorType.ERROR.value): 1,
        ("soak-00", RunStatus.TIMED_OUT.value, ErrorType.TIMEOUT.value): 1,
    }  # the cancel is the web's: its worker's late signal changes no ending and counts none
    released = {dict(labels)["reason"]: v for (name, labels), v in m.items()
                if name == "testrun_slots_released_total"}
    # ... but the cancelled run's slot is freed here, once its body has stopped
    assert released == {ReleaseReason.SUCCEEDED.value: 1, ReleaseReason.FAILED.value: 1,
                        ReleaseReason.TIMED_OUT.value: 1, ReleaseReason.CANCELLED.value: 1}
    for workflow_id in ("echo", "fail", "soak-00"):
        assert value(m, "testrun_run_duration_seconds_count", workflow=workflow_id) == 1
    assert value(m, "testrun_run_duration_seconds_sum", workflow="soak-00") >= 1.5
    # the distribution is the fleet's: no bucket series per workflow
    assert total(m, "testrun_run_seconds_count") == 3
    assert value(m, "testrun_run_seconds_bucket", le="1.0") == 2  # echo and fail, not soak-00
    assert value(m, "testrun_run_seconds_bucket", le="+Inf") == 3
    assert not [labels for (name, labels), _ in m.items() if name.endswith("_bucket")
                and "workflow" in dict(labels)]
    assert total(m, "testrun_queue_wait_seconds_count") == 4
    assert total(m, "testrun_heartbeat_renewals_total") >= 1  # 1 s beats, 2 s+ runs
    assert value(m, "testrun_fencings_total") == 0
    assert value(m, "testrun_slots_held") == 0
    assert value(m, "testrun_runs_active", status=RunStatus.RUNNING.value) == 0
    assert value(m, "testrun_oldest_slot_age_seconds", status=RunStatus.RUNNING.value) == 0
    assert value(m, "testrun_workers_online") == 1
    # what the alert rules compare with: the settings, and `testruns check`'s answer
    assert value(m, "testrun_limit_seconds", setting="TEST_RUN_TIME_LIMIT") == 3
    assert value(m, "testrun_limit_seconds", setting="TEST_RUN_QUEUE_TIMEOUT") == 30
    assert value(m, "testrun_redis_eviction_safe") == 1


def test_web_and_worker_log_json_lines_with_the_run_id(stack, sequence):
    web_lines = json_lines(stack["web"].log())
    admitted = [r for r in web_lines if r.get("event") == LifecycleHooks.admitted.__name__]
    assert {r["run_id"] for r in admitted} >= {sequence["ok"], sequence["cancel"]}
    assert all(r["workflow_id"] and r["level"] == "INFO" and r["time"] for r in admitted)
    cancelled = [r for r in web_lines if r.get("event") == LifecycleHooks.cancelled.__name__]
    assert [r["run_id"] for r in cancelled] == [sequence["cancel"]]
    access = [r for r in web_lines if r.get("logger") == "gunicorn.access"]
    assert any(r["method"] == "POST" and r["status"] == 409 and r["path"].endswith(
        "/probe/test-runs") for r in access), access[-5:]

    worker_lines = json_lines(stack["worker"].log())
    finished = {r["run_id"]: r for r in worker_lines
                if r.get("event") == LifecycleHooks.finished.__name__}
    assert finished[sequence["fail"]]["status"] == RunStatus.FAILED.value
    assert finished[sequence["fail"]]["error_type"] == ErrorType.ERROR.value
    assert finished[sequence["slow"]]["status"] == RunStatus.TIMED_OUT.value
    assert finished[sequence["slow"]]["duration_s"] >= 1.5
    started = [r for r in worker_lines if r.get("event") == LifecycleHooks.started.__name__]
    assert {r["run_id"] for r in started} >= {sequence["ok"], sequence["fail"]}


def test_liveness_in_readyz_workflows_cli_and_the_trigger_answer(stack, sequence):
    url, worker = stack["web"].url, stack["worker"]
    status, ready = request("GET", f"{url}/readyz")
    assert status == 200 and ready["workers_online"] == 1, ready
    assert request("GET", f"{url}/api/workflows")[1]["workers_online"] == 1

    import subprocess
    import sys

    from tests.support.procs import ROOT, base_env

    listed = json.loads(subprocess.run(
        [sys.executable, "-m", "worker", "list"], env=base_env(stack["config"]), cwd=ROOT,
        capture_output=True, check=True, timeout=30).stdout)
    assert [w["hostname"] for w in listed["workers"]] == [worker.hostname]
    assert listed["workers"][0]["concurrency"] == 2

    worker.signal(signal.SIGTERM)  # a warm shutdown withdraws its advertisement
    wait_for(lambda: request("GET", f"{url}/readyz")[1]["workers_online"] == 0, 10,
             "/readyz to say no worker is online")
    # the withdrawal is in Redis now; each gunicorn worker's count is at most CACHE_SECONDS
    # old, so once that bound has passed every one of them answers 0 (the documented staleness)
    seen_zero = time.monotonic()
    wait_for(lambda: time.monotonic() - seen_zero > online.CACHE_SECONDS, 5,
             "every web process's workers count to be refreshed")
    run = trigger(url, "echo", {})
    assert run["workers_online"] == 0 and run["status"] == RunStatus.QUEUED.value
    assert request("GET", f"{url}/api/workflows")[1]["workers_online"] == 0
    status, cancelled = request("POST", f"{url}/api/test-runs/{run['run_id']}/cancel")
    assert status == 202, cancelled
