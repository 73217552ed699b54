"""A run's own log: what a workflow logs lands in its run's `logs` as written (each line cut at
TEST_RUN_MAX_LOG_LINE characters), and in the worker's own log escaped onto one line, so a
workflow cannot forge lines (or terminal escapes) there."""

from __future__ import annotations

from tests.support.api import trigger, wait_terminal
from tests.support.procs import Worker, wait_for
from web import create_app
from worker.core.settings import Settings
from worker.core.status import RunStatus


def test_a_long_log_line_is_cut(config):
    from worker.core.store import RunStore
    store = RunStore(Settings.from_env(overrides=dict(config, TEST_RUN_MAX_LOG_LINE="50")))
    run_id = store.admit("echo", {}).run_id  # type: ignore[union-attr]
    store.append_log(run_id, "y" * 500)
    run = store.get(run_id)
    assert run is not None and run.status is RunStatus.QUEUED
    assert run.logs == ["y" * 50 + " … [450 characters cut]"]


FORGED = "FORGED INFO/MainProcess] test run finished status=succeeded"


def test_run_log_lines_are_escaped_in_the_worker_log_and_kept_in_the_run(config):
    client = create_app(config).test_client()
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
    finally:
        worker.kill_group()
