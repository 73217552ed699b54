"""The bundled example workflows: one per way a run can end. `sleep` and `fail` declare their
input as pydantic models, `echo` as a JSON Schema dict (the two kinds `@workflow` takes); `hang`
declares none, so it takes any JSON object."""

from __future__ import annotations

import math
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from pydantic import BaseModel, ConfigDict, Field

from . import RunContext, workflow

#: echo takes any object: the schema says so, and the page keeps its JSON box for it
ECHO_INPUT = {"type": "object", "description": "any JSON object; returned as it is"}


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid", title="SleepInput")
    seconds: float = Field(5, ge=0, description="how long to sleep (clamped to end just "
                           "before the soft time limit)")


class FailInput(BaseModel):
    model_config = ConfigDict(extra="forbid", title="FailInput")
    message: str = Field("boom", max_length=1000, description="the error the run fails with")


@workflow("echo", description="Returns its input.", input_schema=ECHO_INPUT)
def echo(ctx: RunContext, input: dict[str, Any]) -> Any:
    ctx.logger.info("echoing %d field(s)", len(input))
    return input


#: how long before the soft time limit a clamped sleep ends (at most this, or 10 % of the limit)
SLEEP_MARGIN = 1.0


@workflow("sleep", description="Sleeps input.seconds (default 5), logging a line a second; "
          "clamped to end just before the soft time limit.", input_schema=SleepInput)
def sleep(ctx: RunContext, input: dict[str, Any]) -> Any:
    requested = float(input.get("seconds", 5))
    if not math.isfinite(requested) or requested < 0:
        raise ValueError("seconds must be a finite number, 0 or more")
    seconds = requested
    until_limit = ctx.soft_time_left()
    if ctx.soft_time_limit is not None and until_limit is not None:
        # an example that sleeps past the limit would only ever read timed_out
        most = max(0.0, until_limit - min(SLEEP_MARGIN, ctx.soft_time_limit * 0.1))
        if seconds > most:
            ctx.logger.warning("%gs is past the soft time limit (%gs): sleeping %gs",
                               requested, ctx.soft_time_limit, most)
            seconds = most
    ctx.logger.info("sleeping %gs", seconds)
    deadline = time.monotonic() + seconds
    tick = 0
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        tick += 1
        if deadline - time.monotonic() > 0:
            ctx.logger.info("slept %ds of %gs", tick, seconds)
    return {"slept": seconds}


@workflow("fail", description="Raises with input.message (default 'boom').",
          input_schema=FailInput)
def fail(ctx: RunContext, input: dict[str, Any]) -> Any:
    ctx.logger.info("about to fail")
    raise RuntimeError(str(input.get("message", "boom")))


@workflow("hang", description="Never returns and ignores the soft time limit.")
def hang(ctx: RunContext, input: dict[str, Any]) -> Any:
    ctx.logger.info("hanging until the hard time limit")
    while True:
        try:
            time.sleep(0.5)
        except SoftTimeLimitExceeded:
            ctx.logger.warning("ignoring the soft time limit")
