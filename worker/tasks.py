"""The test-run task: confirm it may run, run the workflow body, return its JSON result.

Outcomes are recorded by the signal handlers (worker/signals.py), which see every ending,
including the ones that happen outside this function (hard limit, killed child, revoke).
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any

from celery import Task
from celery.exceptions import Ignore

from . import workflows
from .keys import workflow_of
from .workflows import RunContext

if TYPE_CHECKING:
    from .app import TestRunCelery
    from .tracker import Tracker

RUN_LOGGER = "worker.workflows.run"


class WorkflowUnavailable(Exception):
    """The worker has no workflow with this id (WORKFLOW_MODULES differ from the web's?)."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"this worker has no workflow {workflow_id!r}")
        self.workflow_id = workflow_id

    def __reduce__(self) -> tuple[type, tuple[str]]:
        # picklable as itself: Celery otherwise wraps it and the failure loses its type
        return type(self), (self.workflow_id,)


class InvalidResult(Exception):
    def __init__(self, workflow_id: str, detail: str) -> None:
        super().__init__(f"workflow {workflow_id!r} returned a value that is not JSON: {detail}")
        self.workflow_id = workflow_id
        self.detail = detail

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.workflow_id, self.detail)


class RunLogHandler(logging.Handler):
    """Appends a workflow's log lines to its run's `logs`; a Redis error never fails the run."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        tracker: Tracker | None = getattr(record, "testrun_tracker", None)
        run_id: str | None = getattr(record, "run_id", None)
        if tracker is None or run_id is None:
            return
        try:
            tracker.append_log(run_id, self.format(record))
        except Exception:  # noqa: BLE001
            self.handleError(record)


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + (
            f".{int(record.msecs):03d}Z"
        )


def run_logger(tracker: Tracker, run_id: str, workflow_id: str) -> logging.LoggerAdapter:
    logger = logging.getLogger(RUN_LOGGER)
    if not any(isinstance(h, RunLogHandler) for h in logger.handlers):
        logger.addHandler(RunLogHandler())
        logger.setLevel(logging.DEBUG)
    return logging.LoggerAdapter(
        logger, {"run_id": run_id, "workflow_id": workflow_id, "testrun_tracker": tracker}
    )


def execute(task: Task, run_id: str) -> Any:
    app: TestRunCelery = task.app
    tracker = app.tracker
    decision = tracker.start(run_id, task.request.hostname)
    if not decision.started:
        # cancelled, expired, superseded, or a second delivery of a run that already ran
        raise Ignore()
    workflow_id = workflow_of(run_id) or ""
    wf = workflows.get(workflow_id)
    if wf is None:
        raise WorkflowUnavailable(workflow_id)
    ctx = RunContext(run_id, workflow_id, run_logger(tracker, run_id, workflow_id))
    result = wf.fn(ctx, decision.input or {})
    try:
        json.dumps(result)
    except (TypeError, ValueError) as exc:
        raise InvalidResult(workflow_id, str(exc)) from None
    return result


def register(app: TestRunCelery) -> None:
    from .app import TASK_NAME

    # shared=False: each app gets its own task, not every app created after it in the process
    @app.task(name=TASK_NAME, bind=True, shared=False, acks_late=False, max_retries=0,
              ignore_result=True, typing=False)
    def run_test(self: Task, run_id: str) -> Any:
        return execute(self, run_id)
