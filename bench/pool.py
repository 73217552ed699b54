"""`python -m bench.pool`: what a run costs inside a pool process, against a bare no-op task's
whole Celery overhead, in the same process: Celery's own tracer (`build_tracer`, what a prefork
child calls per task) of one run of a workflow run before (the start check, the body, the
finish, the lifecycle's lines and counts, Celery's own success line) beside one of the bench's
bare task (one INCR), interleaved call by call, medians of wall and CPU µs. The process is set
up as a worker's pool child is: the worker's app and signal handlers, the metrics in
multiprocess mode, logging at INFO (to a file, as the worker's to its log). Its runs are
admitted by the service beforehand (not timed). Then the same for runs of workflows never run
in this process (`first`: each makes its metric series here), against bare tasks interleaved
with them. Prints one JSON object; `make bench` runs it in a process of its own
(`bench/run.py`), since the worker's app and metrics set-up would otherwise stay in the bench's
process.

Needs REDIS_URL, BENCH_REDIS_URL, BENCH_QUEUE, TEST_RUN_QUEUE, TEST_RUN_KEY_PREFIX and
WORKFLOW_MODULES=bench.workflows, as `make bench` sets them."""

from __future__ import annotations

import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

#: workflows run round-robin (each run again: its metric series exist in this process)
WORKFLOWS = 50


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def measure(n: int) -> dict[str, float]:
    from worker.core.metrics import prepare_multiprocess
    prepare_multiprocess("worker")  # before any metric value is made, as worker_init does
    from celery.app.trace import build_tracer

    from worker.client.service import TestRunService
    from worker.core.celery_app import TASK_NAME, create_celery
    from worker.core.metrics import subscribe
    from worker.core.settings import Settings

    from . import workflows
    from .apps import NOOP
    from .worker_app import app

    subscribe()
    log = tempfile.NamedTemporaryFile("w", prefix="bench-pool-", suffix=".log")  # noqa: SIM115
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter(
        "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"))  # Celery's format
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    service = TestRunService(create_celery(Settings.from_env(), fail_fast=True))
    host = "bench@pool"
    ours = build_tracer(TASK_NAME, app.tasks[TASK_NAME], app=app, hostname=host, eager=False)
    bare = build_tracer(NOOP, app.tasks[NOOP], app=app, hostname=host, eager=False)
    limits = [app.settings.time_limit, app.settings.soft_time_limit]
    ids = workflows.ids()[:WORKFLOWS]

    def run(workflow_id: str) -> tuple[float, float]:
        run_id = service.trigger(workflow_id, {}).run.run_id
        request = {"id": run_id, "hostname": host, "timelimit": limits, "task": TASK_NAME,
                   "delivery_info": {"routing_key": app.settings.queue}}
        return _timed(lambda: ours(run_id, [run_id], {}, request))

    def noop(i: int) -> tuple[float, float]:
        task_id = f"pool-{i}"
        return _timed(lambda: bare(task_id, [task_id], {}, {"id": task_id, "hostname": host,
                                                             "task": NOOP}))

    for workflow_id in ids:  # each workflow's first run in this process: not timed
        run(workflow_id)
    runs, noops = [], []
    for i in range(n):
        runs.append(run(ids[i % len(ids)]))
        noops.append(noop(i))
    # then workflows never run in this process: each run makes its metric series here
    fresh = workflows.ids()[WORKFLOWS:WORKFLOWS + n // 4]
    firsts, first_noops = [], []
    for i, workflow_id in enumerate(fresh):
        firsts.append(run(workflow_id))
        first_noops.append(noop(n + i))
    root.removeHandler(handler)
    log.close()

    def median(samples: list[tuple[float, float]], k: int) -> float:
        return statistics.median(s[k] for s in samples) * 1e6

    return {"run wall": median(runs, 0), "run cpu": median(runs, 1),
            "bare wall": median(noops, 0), "bare cpu": median(noops, 1),
            "first wall": median(firsts, 0), "first cpu": median(firsts, 1),
            "first bare wall": median(first_noops, 0), "first bare cpu": median(first_noops, 1)}


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)))
    sys.stdout.flush()
    os._exit(0)  # the store's pools and the log-batch thread: nothing to wait for
