"""The test-run task: confirm it may run, run the workflow body, return its JSON result; and
the webhook task, which makes one delivery attempt (worker/runner/delivery.py).

Outcomes are recorded by the signal handlers (worker/runner/signals.py), which see every ending,
including the ones that happen outside this function (hard limit, killed child, revoke).
"""

from __future__ import annotations

import json
import time
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore

from .. import workflows
from ..core.celery_app import TASK_NAME, WEBHOOK_TASK
from ..core.errors import InvalidResult, WorkflowUnavailable
from ..core.jsonshape import nesting_exceeds
from ..core.keys import workflow_of
from ..core.lua import Started
from ..core.settings import Settings
from ..core.store import RunStore
from ..workflows import RunContext
from . import delivery
from .runlog import PENDING, run_logger


def execute(task: Task, run_id: str) -> Any:
    began = time.monotonic()  # the soft time limit runs from about now (RunContext)
    store: RunStore = task.app.store
    decision = store.start(run_id, task.request.hostname)
    if not isinstance(decision, Started):
        # cancelled, expired, superseded, or a second delivery of a run that already ran
        raise Ignore()
    workflow_id = workflow_of(run_id) or ""
    workflow = workflows.get(workflow_id)
    if workflow is None:
        raise WorkflowUnavailable(workflow_id)
    limits = task.request.timelimit or (None, None)  # this message's [hard, soft]
    ctx = RunContext(run_id, workflow_id, run_logger(store, run_id, workflow_id),
                     soft_time_limit=limits[1] or store.settings.soft_time_limit, began=began)
    try:
        result = workflow.fn(ctx, decision.input or {})
    finally:
        PENDING.flush(run_id)  # its last lines, before the outcome is recorded
    check_result(workflow_id, result, store.settings)
    return result


def check_result(workflow_id: str, result: Any, settings: Settings) -> None:
    """A result the run may keep, or InvalidResult: JSON with finite numbers, nested at most
    TEST_RUN_MAX_INPUT_DEPTH deep (worker/core/jsonshape.py; checked first, and without
    recursion: a deep result would blow the encoder's stack), at most
    TEST_RUN_MAX_RESULT_BYTES."""
    if nesting_exceeds(result, settings.max_input_depth):
        raise InvalidResult(workflow_id, f"nested deeper than {settings.max_input_depth} "
                                         "levels (TEST_RUN_MAX_INPUT_DEPTH)")
    try:
        size = len(json.dumps(result, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidResult(workflow_id, f"not JSON: {exc}") from None
    if size > settings.max_result_bytes:
        raise InvalidResult(workflow_id, f"{size} bytes of JSON, over TEST_RUN_MAX_RESULT_BYTES "
                                         f"({settings.max_result_bytes})")


def register(app: Celery) -> None:
    # shared=False: each app gets its own task, not every app created after it in the process;
    # acks_late comes from the app's delivery policy (late on RabbitMQ, early on Redis)
    @app.task(name=TASK_NAME, bind=True, shared=False, max_retries=0,
              ignore_result=True, typing=False)
    def run_test(self: Task, run_id: str) -> Any:
        return execute(self, run_id)

    webhooks = getattr(app, "webhooks", None)
    if webhooks is None:
        return
    # one webhook attempt, on WEBHOOK_QUEUE; its time limits bound a slow receiver
    @app.task(name=WEBHOOK_TASK, shared=False, acks_late=False, max_retries=0,
              ignore_result=True, typing=False, time_limit=webhooks.attempt_limit_s,
              soft_time_limit=webhooks.attempt_limit_s - 3)
    def deliver_webhook(webhook_id: str, token: str) -> None:
        delivery.attempt(webhooks, webhook_id, token)
