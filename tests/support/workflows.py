"""Workflows for tests: their bodies record when they ran, into Redis, so tests can prove a
body never ran (after a cancel or expiry) and that no two runs of one workflow overlapped."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
from celery.exceptions import SoftTimeLimitExceeded

from worker.core.cluster import cluster_client, is_cluster
from worker.workflows import RunContext, workflow

_client: redis.Redis | redis.RedisCluster | None = None


def body_log_key(prefix: str) -> str:
    return f"{prefix}:test-bodies"


def _redis() -> redis.Redis | redis.RedisCluster:
    global _client
    if _client is None:
        # TEST_BODY_LOG_URL: a Redis outside the test's chaos (a sentinel:// REDIS_URL, one
        # that fails over or sits across a cut link), so what the bodies record survives it
        # — or the Redis Cluster tracking is on (TEST_TRACKING=cluster, tests/support/tracking.py)
        url = os.environ.get("TEST_BODY_LOG_URL") or os.environ["REDIS_URL"]
        _client = (cluster_client(url, decode_responses=True, socket_timeout=2,
                                  socket_connect_timeout=1) if is_cluster(url)
                   else redis.Redis.from_url(url, decode_responses=True))
    return _client


def _record(ctx: RunContext, event: str) -> None:
    prefix = os.environ.get("TEST_RUN_KEY_PREFIX", "testrun")
    try:
        _redis().rpush(body_log_key(prefix), json.dumps({
            "run_id": ctx.run_id, "workflow_id": ctx.workflow_id, "event": event,
            "t": time.time(), "pid": os.getpid(),
        }))
    except redis.RedisError:
        pass  # Redis restarted under us (chaos tests); the run's own outcome still counts


def behave(ctx: RunContext, input: dict[str, Any]) -> Any:
    """Do what input.mode says: succeed, fail, sleep (input.seconds) or hang."""
    _record(ctx, "start")
    mode = input.get("mode", "succeed")
    if mode == "fail":
        _record(ctx, "end")
        raise RuntimeError(input.get("message", "planned failure"))
    if mode == "hang":
        while True:
            try:
                time.sleep(0.2)
            except SoftTimeLimitExceeded:
                pass
    if mode == "sleep":
        deadline = time.monotonic() + float(input.get("seconds", 1))
        while time.monotonic() < deadline:
            time.sleep(0.05)
    # reached only by a body that ran to its end (not one killed or unwound mid-way)
    _record(ctx, "end")
    return {"mode": mode, "pid": os.getpid()}


workflow("probe", description="Records its start and end; behaves as input.mode says.")(behave)

for _i in range(20):
    workflow(f"soak-{_i:02d}", description="Soak-test workflow.")(behave)


@workflow("not-json", description="Returns a value JSON cannot carry.")
def not_json(ctx: RunContext, input: dict[str, Any]) -> Any:
    return {1, 2, 3}


@workflow("big", description="Returns input.size bytes of text.")
def big(ctx: RunContext, input: dict[str, Any]) -> Any:
    return {"blob": "x" * int(input.get("size", 0))}


@workflow("say", description="Logs input.text as given (control characters and all).")
def say(ctx: RunContext, input: dict[str, Any]) -> Any:
    ctx.logger.info("%s", input.get("text", ""))
    return None


@workflow("chatty", description="Logs input.lines lines, `line <n>`, as fast as it can.")
def chatty(ctx: RunContext, input: dict[str, Any]) -> Any:
    for n in range(int(input.get("lines", 1))):
        ctx.logger.info("line %d", n)
    return None


@workflow("shaped", description="Returns a value nested input.depth deep, or input.number "
                                "(`nan`, `inf`) as a float.")
def shaped(ctx: RunContext, input: dict[str, Any]) -> Any:
    if "number" in input:
        return {"x": float(input["number"])}
    value: Any = {}
    for _ in range(int(input.get("depth", 1)) - 1):
        value = {"a": value}
    return value


#: a JSON Schema dict with a required field, a range and nested items, for the input checks
COUNTED_INPUT = {"type": "object", "required": ["count"], "additionalProperties": False,
                 "properties": {"count": {"type": "integer", "minimum": 1, "default": 1},
                                "label": {"type": "string", "default": "x"},
                                "tags": {"type": "array", "items": {"type": "string"}}}}


@workflow("counted", description="Returns its count; its input is a JSON Schema dict.",
          input_schema=COUNTED_INPUT)
def counted(ctx: RunContext, input: dict[str, Any]) -> Any:
    return {"count": input["count"]}
