"""The HTTP API: trigger, read, cancel and list test runs, and list workflows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import redis
from flask import Blueprint, Response, current_app, jsonify, request, url_for

from worker import workflows
from worker.keys import workflow_of
from worker.service import QueueUnavailable as _QueueUnavailable
from worker.service import RunInProgress, TestRunService
from worker.service import WorkflowNotFound as _WorkflowNotFound
from worker.tracker import RunFinished, RunNotFound

from . import schemas
from .errors import QueueUnavailable, TestRunFinished, TestRunInProgress, TestRunNotFound

bp = Blueprint("api", __name__, url_prefix="/api")
T = TypeVar("T")


def service() -> TestRunService:
    return current_app.extensions["testruns"]


def _redis_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a tracker call; Redis being unreachable is a 503, anything else a real error."""
    try:
        return fn(*args, **kwargs)
    except (redis.RedisError, OSError) as exc:
        raise QueueUnavailable(f"Redis is unavailable: {type(exc).__name__}: {exc}",
                               what="redis") from exc


def _run_response(run_json: dict[str, Any], status: int) -> Response:
    resp = jsonify(run_json)
    resp.status_code = status
    resp.headers["Location"] = url_for("api.get_run", run_id=run_json["run_id"])
    return resp


@bp.get("/workflows")
def list_workflows() -> Response:
    wfs = workflows.all_workflows()
    holders = _redis_call(service().tracker.holders, [w.id for w in wfs])
    return jsonify({"workflows": [schemas.workflow_json(w, holders.get(w.id)) for w in wfs]})


@bp.get("/workflows/<path:workflow_id>")
def get_workflow(workflow_id: str) -> Response:
    wf = schemas.known_workflow(workflow_id, workflows.get(schemas.workflow_id(workflow_id)))
    tracker = service().tracker
    holder = _redis_call(tracker.holders, [wf.id]).get(wf.id)
    run = _redis_call(tracker.get, holder) if holder else None
    return jsonify(schemas.workflow_json(wf, holder, run))


@bp.post("/workflows/<path:workflow_id>/test-runs")
def trigger(workflow_id: str) -> Response:
    schemas.workflow_id(workflow_id)
    body = schemas.trigger_request(request)
    wf = schemas.known_workflow(workflow_id, workflows.get(workflow_id))
    try:
        triggered = service().trigger(wf.id, body.input, on_conflict=body.on_conflict,
                                      idempotency_key=body.idempotency_key)
    except _WorkflowNotFound as exc:
        schemas.known_workflow(exc.workflow_id, None)
        raise
    except RunInProgress as exc:
        raise TestRunInProgress(
            f"workflow {exc.workflow_id!r} already has a test run in progress",
            run_id=exc.run_id, status_url=url_for("api.get_run", run_id=exc.run_id),
        ) from None
    except _QueueUnavailable as exc:
        raise QueueUnavailable(f"cannot enqueue the test run: {exc}", what=exc.what) from None
    return _run_response(schemas.run_json(triggered.run), 202 if triggered.created else 200)


@bp.get("/workflows/<path:workflow_id>/test-runs")
def list_runs(workflow_id: str) -> Response:
    schemas.known_workflow(workflow_id, workflows.get(schemas.workflow_id(workflow_id)))
    limit = schemas.list_limit(request)
    runs = _redis_call(service().tracker.list_runs, workflow_id, limit)
    return jsonify({"runs": [schemas.run_json(r) for r in runs]})


def _not_found(run_id: str) -> TestRunNotFound:
    return TestRunNotFound(f"no test run {run_id!r}", run_id=run_id)


@bp.get("/test-runs/<path:run_id>")
def get_run(run_id: str) -> Response:
    run = _redis_call(service().tracker.get, run_id) if workflow_of(run_id) else None
    if run is None:
        raise _not_found(run_id)
    return jsonify(schemas.run_json(run))


@bp.post("/test-runs/<path:run_id>/cancel")
def cancel_run(run_id: str) -> Response:
    if not workflow_of(run_id):
        raise _not_found(run_id)
    try:
        run = _redis_call(service().cancel, run_id)
    except RunNotFound:
        raise _not_found(run_id) from None
    except RunFinished as exc:
        raise TestRunFinished(f"test run {run_id} already ended: {exc.run.status.value}",
                              run_id=run_id, status=exc.run.status.value) from None
    return _run_response(schemas.run_json(run), 202)
