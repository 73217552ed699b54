"""A pool process starts clean (worker/runner/forks.py): a redis-py lock another thread held at
the fork does not hold it up, and one whose worker died while it was being forked exits.

Real processes: a "worker" process records itself as the main process (worker_init) and forks
a "pool process"; what the pool process prints tells whether it went on."""

from __future__ import annotations

import subprocess
import sys

from tests.support.procs import ROOT

SCRIPT = """
import os, sys, time
from worker.runner import forks
forks._record_main()
parent_dies = sys.argv[1] == "dies"
child = os.fork()
if child == 0:
    deadline = time.monotonic() + 10
    while parent_dies and os.getppid() == forks._main_pid and time.monotonic() < deadline:
        time.sleep(0.01)
    forks._exit_if_orphaned()
    print("went on", flush=True)
    os._exit(0)
if parent_dies:
    os._exit(0)
os.waitpid(child, 0)
"""


def run(script: str, arg: str) -> str:
    # stdout is read until every writer is gone: the pool process too, whichever way it ends
    return subprocess.run([sys.executable, "-c", script, arg], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, check=True).stdout


def pool_process_after(parent: str) -> str:
    return run(SCRIPT, parent)


#: a thread of the "worker" holds a connection pool's lock (as the heartbeat's publish does for
#: the instant of a command) while the main thread forks; the child then disconnects the pool,
#: as kombu's after-fork clean-up does first thing. Prints what the child did within 8 s.
HELD_AT_FORK = """
import os, sys, threading, time
import redis
import worker.runner.app  # the worker's imports: all their objects are what the hook walks
from worker.runner import forks
if sys.argv[1] == "worker":
    forks._record_main()
pool = redis.ConnectionPool.from_url("redis://127.0.0.1:1/0")
import gc; gc.collect()  # the pool among the old objects, as in a worker running a while
held, done = threading.Event(), threading.Event()
def hold():
    with pool._lock:
        held.set()
        done.wait(10)
thread = threading.Thread(target=hold)
thread.start()
held.wait()
child = os.fork()
if child == 0:
    pool.disconnect()
    os._exit(0)
done.set()
thread.join()
deadline = time.monotonic() + 8
while time.monotonic() < deadline:
    if os.waitpid(child, os.WNOHANG)[0]:
        print("disconnected")
        break
    time.sleep(0.02)
else:
    os.kill(child, 9)
    os.waitpid(child, 0)
    print("stuck")
"""


def test_a_redis_lock_held_by_another_thread_at_the_fork_is_new_in_the_child():
    assert run(HELD_AT_FORK, "worker") == "disconnected\n"


def test_without_the_worker_set_up_the_child_is_stuck():
    """The same without forks' set-up: redis-py's own behaviour, what the soak met."""
    assert run(HELD_AT_FORK, "bare") == "stuck\n"


def test_a_pool_process_whose_worker_died_exits():
    assert pool_process_after("dies") == ""


def test_a_pool_process_of_a_live_worker_goes_on():
    assert pool_process_after("lives") == "went on\n"
