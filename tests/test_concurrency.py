"""Acceptance 2: 50 concurrent triggers of one workflow through a real gunicorn → exactly one
202 and 49 × 409 naming that run."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.http import concurrently, request
from tests.support.procs import Gunicorn


@pytest.fixture
def server(config):
    server = Gunicorn(config, workers=2, threads=16).wait_ready()
    yield server
    server.kill_group()


def test_50_concurrent_triggers_admit_exactly_one(server):
    url = f"{server.url}/api/workflows/echo/test-runs"
    results = concurrently(50, lambda i: request("POST", url, {"input": {"i": i}}))
    statuses = Counter(status for status, _ in results)
    assert statuses == {202: 1, 409: 49}, statuses
    winner = next(body for status, body in results if status == 202)
    losers = [body for status, body in results if status == 409]
    assert all(body["error"] == "test_run_in_progress" for body in losers)
    assert {body["run_id"] for body in losers} == {winner["run_id"]}
    status, wf = request("GET", f"{server.url}/api/workflows/echo")
    assert wf["active_run_id"] == winner["run_id"]
