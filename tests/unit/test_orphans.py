"""A pool process whose worker died while it was being forked exits (worker/runner/orphans.py).

Real processes: a "worker" process records itself as the main process and forks a "pool
process", which runs the worker_process_init check once its parent has exited (an orphan) or
while it lives. What the pool process prints after the check tells whether it went on."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import ROOT

SCRIPT = """
import os, sys, time
from worker.runner import orphans
orphans._record_main()
parent_dies = sys.argv[1] == "dies"
child = os.fork()
if child == 0:
    deadline = time.monotonic() + 10
    while parent_dies and os.getppid() == orphans._main_pid and time.monotonic() < deadline:
        time.sleep(0.01)
    orphans._exit_if_orphaned()
    print("went on", flush=True)
    os._exit(0)
if parent_dies:
    os._exit(0)
os.waitpid(child, 0)
"""


def pool_process_after(parent: str) -> str:
    # stdout is read until every writer is gone: the pool process too, whichever way it ends
    return subprocess.run([sys.executable, "-c", SCRIPT, parent], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, check=True).stdout


def test_a_pool_process_whose_worker_died_exits():
    assert pool_process_after("dies") == ""


def test_a_pool_process_of_a_live_worker_goes_on():
    assert pool_process_after("lives") == "went on\n"
