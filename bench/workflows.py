"""BENCH_WORKFLOWS workflows `b-0` … `b-<n-1>` (default 100,000), each a no-op that returns when
it ended, so release latency (body end → slot free) can be read off its record."""

from __future__ import annotations

import os
import time
from typing import Any

from worker.workflows import RunContext, workflow

COUNT = int(os.environ.get("BENCH_WORKFLOWS", "100000"))


def noop(ctx: RunContext, input: dict[str, Any]) -> dict[str, float]:
    return {"ended_at": time.time()}


def ids(n: int = COUNT) -> list[str]:
    return [f"b-{i}" for i in range(n)]


for _id in ids():
    workflow(_id)(noop)
