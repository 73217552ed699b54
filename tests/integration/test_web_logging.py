"""The web process logs its own lifecycle lines under gunicorn (nothing else configures
logging there): an admission and a cancel each leave a line with the run id; a conflict is
DEBUG (a 409 per click must not cost a log line) and is counted instead, in /metrics."""

from __future__ import annotations

import urllib.request

from tests.support.http import request
from tests.support.procs import Gunicorn, wait_for
from worker.core.lifecycle import LifecycleHooks


def test_the_web_logs_admitted_conflict_and_cancelled_with_the_run_id(config):
    server = Gunicorn(config, workers=1, threads=2).wait_ready()
    try:
        url = f"{server.url}/api/workflows/echo/test-runs"
        status, run = request("POST", url, {"input": {}})
        assert status == 202, run
        rid = run["run_id"]
        assert request("POST", url, {"input": {}})[0] == 409
        assert request("POST", f"{server.url}/api/test-runs/{rid}/cancel")[0] == 202
        hooks = LifecycleHooks
        for event in (hooks.admitted.__name__, hooks.cancelled.__name__):
            line = f"test run {event} run_id={rid} workflow_id=echo"
            wait_for(lambda line=line: line in server.log(), 5, f"the web to log {line!r}")
        assert f"test run {hooks.conflict.__name__} " not in server.log()
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=30) as resp:
            text = resp.read().decode()
        assert 'testrun_conflicts_total{workflow="echo"} 1.0' in text, text
    finally:
        server.kill_group()
