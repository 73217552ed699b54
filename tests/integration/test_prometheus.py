"""A real Prometheus scrapes a real stack: Debian's `prometheus` binary, every second, the web's
/metrics (gunicorn, two workers) and the worker's exporter (prefork), with the repository's
alert rules loaded. After a known set of runs, PromQL through Prometheus' HTTP API returns the
counts each ending was recorded with, summed over both jobs; then a `hang` run whose worker
is frozen (SIGSTOP: its hard limit is not enforced, its lease not yet lapsed) fires
TestRunSlotHeldPastHardLimit from the web's gauges alone (the frozen exporter is down), and
the alert resolves once the worker, thawed, kills the run at its limit.

Skips, saying so, without the `prometheus` binary (`make test` installs it as root)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.support.api import delete_prefix, make_config
from tests.support.http import request
from tests.support.procs import Gunicorn, Worker, wait_for
from tests.support.prometheus import BINARY, Prometheus
from worker.core.status import TERMINAL, ErrorType, RunStatus

pytestmark = pytest.mark.skipif(BINARY is None, reason="no prometheus binary: `make test` "
                                                       "installs Debian's package as root")

ALERT = "TestRunSlotHeldPastHardLimit"
TIME_LIMIT, GRACE = 2.0, 1.0


def trigger(url: str, workflow_id: str, input: dict[str, Any]) -> str:
    status, body = request("POST", f"{url}/api/workflows/{workflow_id}/test-runs",
                           {"input": input})
    assert status == 202, body
    return body["run_id"]


def run_of(url: str, run_id: str) -> Any:
    status, run = request("GET", f"{url}/api/test-runs/{run_id}")
    assert status == 200, run
    return run


def wait_run(url: str, run_id: str, statuses: set[str], timeout: float = 20) -> Any:
    return wait_for(lambda: (lambda r: r if r["status"] in statuses else None)(
        run_of(url, run_id)), timeout, f"{run_id} to reach {sorted(statuses)}")


@pytest.fixture(scope="module")
def stack(redis_client: Any) -> Iterator[dict[str, Any]]:
    # a hard limit of 2 s plus 1 s of grace; a long heartbeat TTL, so a frozen worker's slot
    # stays held (its lease unrenewed but not lapsed) long enough for the alert
    config = make_config(TEST_RUN_TIME_LIMIT=str(TIME_LIMIT), TEST_RUN_SOFT_TIME_LIMIT="1.5",
                         TEST_RUN_LEASE_GRACE=str(GRACE), TEST_RUN_HEARTBEAT_TTL="30")
    worker = Worker(config, concurrency=2).wait_ready()
    web = Gunicorn(config, workers=2, threads=4).wait_ready()
    prometheus = Prometheus({"testruns-web": [urlsplit(web.url).netloc],
                             "testruns-worker": [urlsplit(worker.metrics_url).netloc]})
    try:
        prometheus.wait_ready()
        yield {"config": config, "worker": worker, "web": web, "prometheus": prometheus}
    finally:
        worker.signal(signal.SIGCONT)
        for proc in (web, worker):
            proc.kill_group()
        prometheus.close()
        delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


def test_promql_counts_each_ending_once_over_both_jobs(stack):
    url, prom = stack["web"].url, stack["prometheus"]
    runs = [trigger(url, "echo", {"a": 1}), trigger(url, "fail", {}),
            trigger(url, "soak-00", {"mode": "sleep", "seconds": 30})]  # soft limit: timed_out
    cancelled = trigger(url, "probe", {"mode": "sleep", "seconds": 30})
    wait_run(url, cancelled, {RunStatus.RUNNING.value})
    status, body = request("POST", f"{url}/api/test-runs/{cancelled}/cancel")
    assert status == 202, body
    for run_id in runs + [cancelled]:
        wait_run(url, run_id, {s.value for s in TERMINAL})

    wait_for(lambda: prom.targets_up() == {"testruns-web": 1, "testruns-worker": 1}, 10,
             "both targets to be scraped")
    finished = "sum(testrun_runs_finished_total) by (status)"
    # the worker counted three endings, the web the cancel; `lost` is there at 0 (primed)
    expected = {RunStatus.SUCCEEDED.value: 1, RunStatus.FAILED.value: 1,
                RunStatus.TIMED_OUT.value: 1, RunStatus.CANCELLED.value: 1,
                RunStatus.LOST.value: 0}
    got = wait_for(lambda: (lambda r: r if r == expected else None)(prom.by(finished, "status")),
                   15, f"{finished} to be {expected}")
    print(f"\nPromQL {finished} -> {got}")
    by_job = prom.by("sum(testrun_runs_finished_total) by (job)", "job")
    print(f"PromQL sum(testrun_runs_finished_total) by (job) -> {by_job}")
    assert by_job == {"testruns-web": 1, "testruns-worker": 3}
    admitted = prom.by("sum(testrun_admissions_total)", "")
    print(f"PromQL sum(testrun_admissions_total) -> {admitted}")
    assert admitted == {"": 4}
    online = prom.by("max(testrun_workers_online)", "")
    assert online == {"": 1}
    worker_lost = f'sum(testrun_runs_finished_total{{error_type="{ErrorType.WORKER_LOST.value}"}})'
    assert prom.by(worker_lost, "") == {"": 0}  # primed at 0 too


def test_a_frozen_worker_fires_the_slot_held_past_its_limit_alert(stack):
    url, prom, worker = stack["web"].url, stack["prometheus"], stack["worker"]
    assert not [a for a in prom.alerts() if a["labels"]["alertname"] == ALERT]
    run_id = trigger(url, "hang", {})
    wait_run(url, run_id, {RunStatus.RUNNING.value})
    worker.signal(signal.SIGSTOP)  # the main process: no hard limit, no heartbeat, no exporter
    frozen = time.monotonic()

    def firing() -> Any:
        return [a for a in prom.alerts()
                if a["labels"]["alertname"] == ALERT and a["state"] == "firing"]

    alerts = wait_for(firing, 20, f"{ALERT} to fire", interval=0.25)
    fired_after = time.monotonic() - frozen
    oldest = f'max(testrun_oldest_slot_age_seconds{{status="{RunStatus.RUNNING.value}"}})'
    age = prom.by(oldest, "")
    up = prom.targets_up()
    print(f"\n{ALERT} firing {fired_after:.1f}s after the worker froze: labels "
          f"{alerts[0]['labels']}, value {float(alerts[0]['value']):.1f}s; PromQL {oldest} -> "
          f"{age}, up -> {up}")
    assert alerts[0]["labels"]["severity"] == "page"
    assert float(alerts[0]["value"]) > TIME_LIMIT + GRACE
    assert up["testruns-worker"] == 0 and up["testruns-web"] == 1  # the web's gauges told
    assert run_of(url, run_id)["status"] == RunStatus.RUNNING  # its lease is still alive

    worker.signal(signal.SIGCONT)  # thawed, it kills the run at its (long past) hard limit
    done = wait_run(url, run_id, {s.value for s in TERMINAL})
    assert done["status"] == RunStatus.TIMED_OUT and done["error_type"] == ErrorType.TIMEOUT
    wait_for(lambda: not firing(), 15, f"{ALERT} to resolve")
    print(f"{ALERT} resolved once the thawed worker ended the run {done['status']}")
