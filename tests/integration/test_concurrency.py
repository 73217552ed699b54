"""Concurrent triggers of one workflow through a real gunicorn: exactly one 202, every other
answer a 409 naming that run: 50 requests across 2 gunicorn workers, and 500 across 4."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.support.http import concurrently, request
from tests.support.procs import Gunicorn

pytestmark = pytest.mark.cluster_tracking


@pytest.mark.parametrize("requests, workers", [(50, 2), (500, 4)])
def test_concurrent_triggers_admit_exactly_one(config, requests, workers):
    server = Gunicorn(config, workers=workers, threads=32).wait_ready()
    try:
        url = f"{server.url}/api/workflows/sleep/test-runs"
        results = concurrently(requests,
                               lambda i: request("POST", url, {"input": {"seconds": i}}))
        errors = [r for r in results if isinstance(r, Exception)]
        assert not errors, errors[:3]
        statuses = Counter(status for status, _ in results)
        assert statuses == {202: 1, 409: requests - 1}, statuses
        winner = next(body["run_id"] for status, body in results if status == 202)
        losers = [body for status, body in results if status == 409]
        assert all(body["error"] == "test_run_in_progress" for body in losers)
        assert {body["run_id"] for body in losers} == {winner}
        _, wf = request("GET", f"{server.url}/api/workflows/sleep")
        assert wf["active_run_id"] == winner
    finally:
        server.kill_group()
