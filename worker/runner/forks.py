"""A pool process starts clean: redis-py's locks made new after the fork, and an orphan exits.

Celery forks its pool processes from the worker's main process, which runs other threads too
(the heartbeat, the stop of a cancelled body, the publish of a run promoted by a release). A
thread that held a redis-py lock at the instant of a fork — a connection pool's, taken for
every command — leaves the child a copy of that lock held by a thread the child does not
have. The first thing a child runs is kombu's after-fork clean-up, which disconnects the
broker's Redis pools: `ConnectionPool.reset` waits on that lock forever (redis-py 8 takes it
there, with no timeout). Seen by the soak (py-spy of the stuck child: `_after_fork_cleanup_
resource` → `ConnectionPool.reset`, futex wait): Celery kills a child that does not come up in
4 s, but a worker killed within those 4 s left it running forever, reparented to init. So,
in the child, right after the fork and before anything else runs: every lock of every redis-py
object is made new (`os.register_at_fork`, the way CPython's logging does its own).

And Celery asks the kernel to kill a pool process with its parent (`PR_SET_PDEATHSIG`) only
after the fork: a parent killed in between leaves the child without that request. prctl(2)
says to check the parent after the call; `worker_process_init` runs after it, in the child,
and a parent that is not the worker's main process (recorded at `worker_init`, before the pool
forks) means the parent is gone: the child exits.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from typing import Any

from celery.signals import worker_init, worker_process_init

logger = logging.getLogger(__name__)

#: the kinds of lock a redis-py object may hold (threading.Lock and RLock's C types)
LOCKS = (type(threading.Lock()), type(threading.RLock()))

#: the worker's main process, recorded before the pool forks (children inherit it)
_main_pid: int | None = None
_registered = False


def fresh_redis_locks() -> int:
    """Every lock held in an attribute of a redis-py object, made new (unheld) in place; how
    many. Only for the child of a fork, where no other thread exists to hold one."""
    made = 0
    for obj in gc.get_objects():
        module = getattr(type(obj), "__module__", None)  # a C type's may be a descriptor
        if not (isinstance(module, str) and module.startswith("redis.")):
            continue
        for value in getattr(obj, "__dict__", {}).values():
            if isinstance(value, LOCKS):
                # CPython's own after-fork re-initialisation of a lock (logging's, threading's)
                value._at_fork_reinit()  # type: ignore[union-attr]
                made += 1
    return made


def _record_main(**_: Any) -> None:
    global _main_pid, _registered
    _main_pid = os.getpid()
    if not _registered:  # at most once a process: a fork hook cannot be taken back
        os.register_at_fork(after_in_child=fresh_redis_locks)
        _registered = True


def orphaned(main_pid: int | None) -> bool:
    """Whether this process's parent is no longer `main_pid` (None: not recorded: no)."""
    return main_pid is not None and os.getppid() != main_pid


def _exit_if_orphaned(**_: Any) -> None:
    if orphaned(_main_pid):
        logger.warning("pool process %d: the worker (pid %s) died while it was being started; "
                       "exiting", os.getpid(), _main_pid)
        os._exit(1)  # nothing of this process is worth cleaning up: it never took a task


def connect() -> None:
    worker_init.connect(_record_main, weak=False)
    worker_process_init.connect(_exit_if_orphaned, weak=False)
