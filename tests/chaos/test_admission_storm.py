"""Chaos acceptance 4: 500 concurrent triggers of one workflow across 4 gunicorn workers →
exactly one admitted, every other answer a 409 naming it."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.http import concurrently, request
from tests.support.procs import Gunicorn


@pytest.fixture
def server(config):
    server = Gunicorn(config, workers=4, threads=32).wait_ready()
    yield server
    server.kill_group()


def test_500_concurrent_triggers_across_4_gunicorn_workers(server):
    url = f"{server.url}/api/workflows/sleep/test-runs"
    results = concurrently(500, lambda i: request("POST", url, {"input": {"i": i}}))
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors[:3]
    statuses = Counter(status for status, _ in results)
    assert statuses == {202: 1, 409: 499}, statuses
    winner = next(body["run_id"] for status, body in results if status == 202)
    assert {body["run_id"] for status, body in results if status == 409} == {winner}
