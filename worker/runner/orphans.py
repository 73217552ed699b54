"""A pool process whose worker died while it was being forked exits at once.

Celery's prefork child asks the kernel to SIGKILL it when its parent dies
(`PR_SET_PDEATHSIG`, first thing in `process_initializer`). A parent killed between the fork and
that call leaves the child without it: the child goes on initialising, reparented to init, and
then waits for tasks on a pipe no one writes to again — a process that never ends, found by the
soak (a worker's main process SIGKILLed just after it replaced a killed pool child: one child
outlived it by more than 10 s). prctl(2) says to check the parent after the call, and this does:
`worker_process_init` runs after it, in the child, and a parent that is not the worker's main
process (recorded at `worker_init`, before the pool forks) means that parent is gone.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import worker_init, worker_process_init

logger = logging.getLogger(__name__)

#: the worker's main process, recorded before the pool forks (children inherit it)
_main_pid: int | None = None


def _record_main(**_: Any) -> None:
    global _main_pid
    _main_pid = os.getpid()


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
