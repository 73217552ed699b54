"""Two small ones, against a real prefork worker: a workflow's log lines reach the worker's own
log escaped onto one line each (a workflow cannot forge log lines there), while the run's own
log keeps them as written; and the bundled `sleep` clamps its seconds to end before the soft
time limit instead of timing out."""

from __future__ import annotations

from tests.support.api import trigger, wait_terminal
from tests.support.procs import Worker, wait_for
from web import create_app
from worker.core.status import RunStatus

FORGED = "FORGED INFO/MainProcess] test run finished status=succeeded"


def test_run_log_lines_are_escaped_in_the_worker_log_and_sleep_is_clamped(config):
    client = create_app(config).test_client()  # soft limit 2 s, hard 3 s
    worker = Worker(config, concurrency=1).wait_ready()
    try:
        text = f"before\r\n{FORGED}\x1b[2Jafter"
        said = wait_terminal(client, trigger(client, "say", {"text": text})["run_id"])
        assert said["status"] == RunStatus.SUCCEEDED
        assert any(line.endswith(text) for line in said["logs"])  # the run's own log: as is
        escaped = "before\\r\\n" + FORGED + "\\x1b[2Jafter"
        wait_for(lambda: escaped in worker.log(), 10, "the escaped line in the worker's log")
        lines = worker.log().splitlines()
        assert not any(line.startswith(FORGED) for line in lines)
        assert "\x1b" not in worker.log()

        slept = wait_terminal(client, trigger(client, "sleep", {"seconds": 60})["run_id"])
        assert slept["status"] == RunStatus.SUCCEEDED, slept
        assert 0 < slept["result"]["slept"] < 2  # just below the 2 s soft limit
        assert any("past the soft time limit" in line for line in slept["logs"])
        for bad in ({"seconds": -1}, {"seconds": "nan"}):
            failed = wait_terminal(client, trigger(client, "sleep", bad)["run_id"])
            assert failed["status"] == RunStatus.FAILED and "finite" in failed["error"]
    finally:
        worker.kill_group()
