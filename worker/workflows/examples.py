"""The bundled example workflows: one per way a run can end."""

from __future__ import annotations

import math
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from . import RunContext, workflow


@workflow("echo", description="Returns its input.")
def echo(ctx: RunContext, input: dict[str, Any]) -> Any:
    ctx.logger.info("echoing %d field(s)", len(input))
    return input


#: how long before the soft time limit a clamped sleep ends (at most this, or 10 % of the limit)
SLEEP_MARGIN = 1.0


@workflow("sleep", description="Sleeps input.seconds (default 5), logging a line a second; "
          "clamped to end just before the soft time limit.")
def sleep(ctx: RunContext, input: dict[str, Any]) -> Any:
    requested = float(input.get("seconds", 5))
    if not math.isfinite(requested) or requested < 0:
        raise ValueError("seconds must be a finite number, 0 or more")
    seconds = requested
    if ctx.soft_time_limit is not None:
        # an example that sleeps past the limit would only ever read timed_out
        most = max(0.0, ctx.soft_time_limit - min(SLEEP_MARGIN, ctx.soft_time_limit * 0.1))
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


@workflow("fail", description="Raises with input.message (default 'boom').")
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
