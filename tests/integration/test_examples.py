"""The bundled example workflows, on a real prefork worker: `sleep` clamps its seconds to end
just before the soft time limit instead of timing out; a negative number or text for its
seconds is refused by its input schema before any worker sees it."""

from __future__ import annotations

import logging
import time

from tests.support.api import trigger, wait_terminal
from tests.support.procs import Worker
from web import create_app
from worker.core.status import RunStatus
from worker.workflows import RunContext, examples


def test_sleep_is_clamped_to_end_before_the_soft_limit(config):
    client = create_app(config).test_client()  # soft limit 2 s, hard 3 s
    worker = Worker(config, concurrency=1).wait_ready()
    try:
        slept = wait_terminal(client, trigger(client, "sleep", {"seconds": 60})["run_id"])
        assert slept["status"] == RunStatus.SUCCEEDED, slept
        assert 0 < slept["result"]["slept"] < 2  # just below the 2 s soft limit
        assert any("past the soft time limit" in line for line in slept["logs"])
        for bad in ({"seconds": -1}, {"seconds": "nan"}):
            refused = trigger(client, "sleep", bad, expect=422)
            assert [e["pointer"] for e in refused["errors"]] == ["/seconds"]
        assert client.get("/api/workflows/sleep").get_json()["active_run_id"] is None
    finally:
        worker.kill_group()


def test_a_clamped_sleep_counts_the_soft_limit_from_the_tasks_start():
    """The soft limit runs from when the task began, not from when the body's sleep starts:
    under load the start check and the first lines took long enough (a fresh-clone `make test`
    at load 8) that a sleep clamped to the whole limit ran past it and read timed_out."""
    ctx = RunContext("sleep-x", "sleep", logging.LoggerAdapter(logging.getLogger("t"), {}),
                     soft_time_limit=1.0, began=time.monotonic() - 0.5)
    started = time.monotonic()
    slept = examples.sleep(ctx, {"seconds": 60})["slept"]
    assert slept <= 0.5 - 0.1 + 0.01, slept  # what was left of the limit, less the margin
    assert time.monotonic() - ctx.began < ctx.soft_time_limit
    assert time.monotonic() - started >= slept
