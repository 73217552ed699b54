"""Benchmarks: admission, conflict, release and 503 costs, each against a bare Celery publish
(`send_task` with no result backend involvement) measured in the same run, on a private
redis-server. Prints the figures and their ratios; README numbers come from here.

    make bench            # or: python bench/run.py --n 3000
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.redis_server import RedisServer, free_port  # noqa: E402
from worker.app import create_celery  # noqa: E402
from worker.errors import QueueUnavailable, RunInProgress  # noqa: E402
from worker.service import TestRunService  # noqa: E402
from worker.settings import Settings  # noqa: E402
from worker.status import RunStatus  # noqa: E402
from worker.tasks import TASK_NAME  # noqa: E402
from worker.workflows import workflow  # noqa: E402


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


def pct(samples: list[float], q: float) -> float:
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(q * len(samples)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    n = args.n
    server = RedisServer().start()
    try:
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        settings = Settings.from_env(overrides={"REDIS_URL": server.url,
                                                "TEST_RUN_KEY_PREFIX": prefix,
                                                "TEST_RUN_QUEUE": prefix})
        ids = [f"bench-{i}" for i in range(n)]
        for wid in ids:
            workflow(wid)(lambda ctx, input: input)
        celery = create_celery(settings, fail_fast=True)
        service = TestRunService(celery)
        # warm both paths (connections, script load, queue binding)
        celery.send_task(TASK_NAME, args=["warm"], queue=prefix, ignore_result=True)
        service.trigger("echo", {})

        t = time.perf_counter()
        for i in range(n):
            celery.send_task(TASK_NAME, args=[f"x-{i}"], task_id=f"x-{i}", queue=prefix,
                             ignore_result=True, retry=False)
        baseline = rate(n, time.perf_counter() - t)

        t = time.perf_counter()
        runs = [service.trigger(wid, {}).run.run_id for wid in ids]
        admit = rate(n, time.perf_counter() - t)

        t = time.perf_counter()
        for wid in ids:
            try:
                service.trigger(wid, {})
            except RunInProgress:
                pass
        conflict = rate(n, time.perf_counter() - t)

        release: list[float] = []
        for rid in runs:
            t = time.perf_counter()
            service.store.finish(rid, RunStatus.SUCCEEDED, result=None)
            release.append(time.perf_counter() - t)

        down = Settings.from_env(overrides={
            "REDIS_URL": server.url, "TEST_RUN_KEY_PREFIX": prefix + "-down",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
        down_service = TestRunService(create_celery(down, fail_fast=True))
        unavailable: list[float] = []
        for wid in ids[: min(n, 300)]:
            t = time.perf_counter()
            try:
                down_service.trigger(wid, {})
            except QueueUnavailable:
                pass
            unavailable.append(time.perf_counter() - t)

        print(f"runs per figure: {n}; private redis-server on loopback")
        print(f"baseline send_task (no backend):  {baseline:8.0f}/s")
        print(f"admission (Lua + publish):        {admit:8.0f}/s   ratio {admit / baseline:.2f}x")
        print(f"conflict (409 path):              {conflict:8.0f}/s   ratio "
              f"{conflict / baseline:.2f}x")
        print(f"release latency p50/p99:          {pct(release, .5):.2f} / "
              f"{pct(release, .99):.2f} ms")
        print(f"503 (broker down) latency p50/p99: {pct(unavailable, .5):.2f} / "
              f"{pct(unavailable, .99):.2f} ms")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
