"""End to end through a real 2-process prefork worker (`celery -A bench.worker_app`, as the
Procfile runs it): runs/s of the no-op workflow through the service against a bare no-op task
through the same worker, interleaved rounds, medians; and the release latency of those runs
(the body's last instant → the slot freed, read off the record).

Two figures for the service: `echo` runs the same n workflows every round (after a warm-up
round), as a deployment runs its workflows again and again; `fresh` runs n workflows never run
before, so every run is also the first of its workflow in its pool process, which makes that
workflow's metric series there (4 multiprocess values: runs started and finished, the
duration's count and sum, each a line in an mmap'd file; made once per process and workflow;
bench/pool.py measures that cost alone)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import redis

from worker.client.service import TestRunService
from worker.core.celery_app import TASK_NAME  # noqa: F401 - the worker runs it
from worker.core.status import RunStatus

from . import workflows
from .apps import DONE_KEY, NOOP
from .procs import Worker


def _wait(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def run(env: dict[str, str], service: TestRunService, client: redis.Redis, *, n: int,
        rounds: int, log: Callable[[str], None]) -> dict[str, float]:
    queue = env["TEST_RUN_QUEUE"]
    worker = Worker("bench.worker_app", env, queue, concurrency=2)
    ids = workflows.ids()
    rates: dict[str, list[float]] = {"bare": [], "echo": [], "fresh": []}
    latencies: list[float] = []

    def runs_per_s(batch: list[str], into: list[float] | None) -> None:
        t = time.perf_counter()
        runs = [service.trigger(wid, {}).run.run_id for wid in batch]
        # cheap while messages wait (one LLEN), then the slots (a pipeline of GETs): the
        # bare side's poll is one GET, so ours must not load Redis more than that
        _wait(lambda: client.llen(queue) == 0, 300, "the queue to drain")
        _wait(lambda: not any(service.store.holders(batch).values()), 300, "the runs")
        if into is not None:
            into.append(n / (time.perf_counter() - t))
        for run_id in runs:
            run = service.store.get(run_id)
            assert run is not None and run.status is RunStatus.SUCCEEDED, run
            latencies.append((run.released_ms or 0) / 1000 - run.result["ended_at"])

    try:
        service.trigger(ids[-1], {})  # warm both paths through the worker
        service.celery.send_task(NOOP, args=["warm"], queue=queue, ignore_result=True)
        _wait(lambda: int(client.get(DONE_KEY) or 0) >= 1, 60, "the warm-up task")
        runs_per_s(ids[:n], None)  # the repeated workflows' first runs
        for r in range(rounds):
            client.set(DONE_KEY, 0)
            t = time.perf_counter()
            for i in range(n):
                service.celery.send_task(NOOP, args=[f"b-{i}"], queue=queue,
                                         ignore_result=True, retry=False)
            _wait(lambda: int(client.get(DONE_KEY) or 0) >= n, 300, "the bare tasks")
            rates["bare"].append(n / (time.perf_counter() - t))

            runs_per_s(ids[:n], rates["echo"])
            runs_per_s(ids[(r + 1) * n:(r + 2) * n], rates["fresh"])
            log(f"e2e round {r + 1}/{rounds}: bare {rates['bare'][-1]:.0f}/s, "
                f"echo {rates['echo'][-1]:.0f}/s, fresh workflows {rates['fresh'][-1]:.0f}/s")
    finally:
        worker.stop()
    ordered = sorted(latencies)
    return {"bare": statistics.median(rates["bare"]), "echo": statistics.median(rates["echo"]),
            "fresh": statistics.median(rates["fresh"]),
            "echo_ratio": statistics.median(e / b for e, b in zip(rates["echo"], rates["bare"],
                                                                  strict=True)),
            "fresh_ratio": statistics.median(f / b for f, b in zip(rates["fresh"],
                                                                   rates["bare"], strict=True)),
            "release_p50_ms": ordered[len(ordered) // 2] * 1000,
            "release_p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000}
