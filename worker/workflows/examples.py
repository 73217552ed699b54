"""The bundled example workflows: one per way a run can end."""

from __future__ import annotations

import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from . import RunContext, workflow


@workflow("echo", description="Returns its input.")
def echo(ctx: RunContext, input: dict[str, Any]) -> Any:
    ctx.logger.info("echoing %d field(s)", len(input))
    return input


@workflow("sleep", description="Sleeps input.seconds (default 5), logging a line a second.")
def sleep(ctx: RunContext, input: dict[str, Any]) -> Any:
    seconds = float(input.get("seconds", 5))
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
