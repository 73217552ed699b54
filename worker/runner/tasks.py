"""The test-run task: confirm it may run, run the workflow body, return its JSON result.

Outcomes are recorded by the signal handlers (worker/runner/signals.py), which see every ending,
including the ones that happen outside this function (hard limit, killed child, revoke).
"""

from __future__ import annotations

import json
from typing import Any

from celery import Celery, Task
from celery.exceptions import Ignore

from .. import workflows
from ..core.celery_app import TASK_NAME
from ..core.errors import InvalidResult, WorkflowUnavailable
from ..core.keys import workflow_of
from ..core.lua import Started
from ..core.store import RunStore
from ..workflows import RunContext
from .runlog import run_logger


def execute(task: Task, run_id: str) -> Any:
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
                     soft_time_limit=limits[1] or store.settings.soft_time_limit)
    result = workflow.fn(ctx, decision.input or {})
    try:
        size = len(json.dumps(result, separators=(",", ":")).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidResult(workflow_id, f"not JSON: {exc}") from None
    if size > store.settings.max_result_bytes:
        raise InvalidResult(workflow_id, f"{size} bytes of JSON, over TEST_RUN_MAX_RESULT_BYTES "
                                         f"({store.settings.max_result_bytes})")
    return result


def register(app: Celery) -> None:
    # shared=False: each app gets its own task, not every app created after it in the process;
    # acks_late comes from the app's delivery policy (late on RabbitMQ, early on Redis)
    @app.task(name=TASK_NAME, bind=True, shared=False, max_retries=0,
              ignore_result=True, typing=False)
    def run_test(self: Task, run_id: str) -> Any:
        return execute(self, run_id)
