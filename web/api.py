"""The HTTP API: trigger, read, cancel and list test runs, and list workflows.

Routes parse the request (web/schemas.py), call one service method and shape its answer; the
service raises the errors (worker/errors.py) that web/errors.py renders."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from worker.runs import Run
from worker.service import TestRunService

from . import schemas

bp = Blueprint("api", __name__, url_prefix="/api")


def service() -> TestRunService:
    return current_app.extensions["testruns"]


def _run_response(run: Run, status: int) -> Response:
    resp = jsonify(schemas.run_json(run))
    resp.status_code = status
    resp.headers["Location"] = url_for("api.get_run", run_id=run.run_id)
    return resp


@bp.get("/workflows")
def list_workflows() -> Response:
    return jsonify({"workflows": [schemas.workflow_json(s) for s in service().workflows()]})


@bp.get("/workflows/<path:workflow_id>")
def get_workflow(workflow_id: str) -> Response:
    return jsonify(schemas.workflow_json(service().workflow(schemas.workflow_id(workflow_id))))


@bp.post("/workflows/<path:workflow_id>/test-runs")
def trigger(workflow_id: str) -> Response:
    schemas.workflow_id(workflow_id)
    body = schemas.trigger_request(request)
    triggered = service().trigger(workflow_id, body.input, on_conflict=body.on_conflict,
                                  idempotency_key=body.idempotency_key)
    return _run_response(triggered.run, 202 if triggered.created else 200)


@bp.get("/workflows/<path:workflow_id>/test-runs")
def list_runs(workflow_id: str) -> Response:
    known = service().known_workflow(schemas.workflow_id(workflow_id))
    runs = service().runs(known.id, schemas.list_limit(request))
    return jsonify({"runs": [schemas.run_json(r) for r in runs]})


@bp.get("/test-runs/<path:run_id>")
def get_run(run_id: str) -> Response:
    return jsonify(schemas.run_json(service().run(run_id)))


@bp.post("/test-runs/<path:run_id>/cancel")
def cancel_run(run_id: str) -> Response:
    return _run_response(service().cancel(run_id), 202)
