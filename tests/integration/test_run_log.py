"""A run's own log: what a workflow logs lands in its run's `logs` as written (each line cut at
TEST_RUN_MAX_LOG_LINE characters), and in the worker's own log escaped onto one line, so a
workflow cannot forge lines (or terminal escapes) there."""

from __future__ import annotations

import hashlib
import threading

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


def test_a_run_that_logs_a_lot_writes_its_lines_in_batches_in_order(config, private_redis):
    """250 lines in a burst: every one in the run's log, in order, in a handful of
    append_log.lua calls (a batch per 100 lines, or per 0.1 s), not 250 round trips."""
    from worker.core.lua import source
    sha = hashlib.sha1(source("append_log").encode()).hexdigest()
    env = dict(config, REDIS_URL=private_redis.url)
    client = create_app(env).test_client()
    worker = Worker(env, concurrency=1).wait_ready()
    calls: list[str] = []
    watching = threading.Event()

    def watch() -> None:
        with private_redis.client().monitor() as monitor:
            watching.set()
            while True:
                words = monitor.next_command()["command"].split(" ")
                if words[0].upper() == "ECHO":
                    return
                if words[0].upper() == "EVALSHA" and words[1] == sha:
                    calls.append(words[1])

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        assert watching.wait(5)
        run = wait_terminal(client, trigger(client, "chatty", {"lines": 250})["run_id"])
        assert run["status"] == RunStatus.SUCCEEDED
        assert [line.split(" INFO ", 1)[1] for line in run["logs"]] == [
            f"line {n}" for n in range(250)]
        private_redis.client().echo("done")
        thread.join(10)
        assert 3 <= len(calls) <= 8, len(calls)
    finally:
        worker.kill_group()
