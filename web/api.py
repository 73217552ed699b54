"""The HTTP API: trigger, read, cancel and list test runs, and list workflows.

Each route declares its request models (path, query, headers, body: validated by flask-openapi3
before the route runs, a failure is a 400) and every answer it can give (the OpenAPI document
is generated from these declarations); it calls one service method and shapes its answer with
a response model. The service raises the errors (worker/core/errors.py) that web/errors.py renders.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, request
from flask_openapi3 import APIBlueprint, Tag

from worker.client.service import TestRunService, Triggered
from worker.core.errors import RunInProgress
from worker.core.runs import Run

from . import errors, waits
from . import schemas as s
from .auth import Caller
from .encoding import JsonAnswer, response_of, run_url_of

bp = APIBlueprint("api", __name__, url_prefix="/api", abp_security=[{"bearer": []}, {}])
RUNS = Tag(name="test runs", description="trigger, read, cancel and watch test runs")
WORKFLOWS = Tag(name="workflows", description="what can be run, and what is running")

#: answers any route may give, the app's or the HTTP server's before it (web/before_app.py): a
#: Host header outside TRUSTED_HOSTS (400), a request line or headers too large (414, 431), an
#: app that does not answer the front (503)
SERVER: dict[str | int | HTTPStatus, Any] = {
    400: s.HostNotAllowedBody, 414: s.UriTooLongBody, 431: s.HeadersTooLargeBody,
    503: s.AppUnavailableBody}
#: answers every /api/ route may give
COMMON: dict[str | int | HTTPStatus, Any] = {
    **SERVER, 401: s.UnauthorizedBody, 403: s.ForbiddenBody, 405: s.MethodNotAllowedBody,
    500: s.InternalErrorBody, 503: s.one_of(s.QueueUnavailableBody, s.AppUnavailableBody)}


#: a path shaped like a route's that still matches none (a run id with a newline in it, say) is
#: `not_found`, so every 404 may be either
NO_WORKFLOW = s.one_of(s.WorkflowNotFoundBody, s.NotFoundBody)
NO_RUN = s.one_of(s.RunNotFoundBody, s.NotFoundBody)


#: what any route may answer besides its own error of that status: a Host header outside
#: TRUSTED_HOSTS (400), a token without the route's scope (403), an app that does not answer
#: the front (503)
ALSO: dict[int, type[s.ErrorBody]] = {400: s.HostNotAllowedBody, 403: s.ForbiddenBody,
                                      503: s.AppUnavailableBody}


def answers(**by_status: Any) -> dict[str | int | HTTPStatus, Any]:
    """`answers(_200=Model, _404=...)` plus the common ones: the route's every answer, for
    its OpenAPI operation."""
    out = dict(COMMON)
    for key, model in by_status.items():
        status = int(key.lstrip("_"))
        also = ALSO.get(status)
        out[status] = s.one_of(*s.members(model), also) if also else model
    return out


def service() -> TestRunService:
    return current_app.extensions["testruns"]


def _run_response(run: Run, status: int, *, fresh: bool = False, **extra: Any) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return response_of(app, run_answer(app, request.script_root, g.caller, run, status,
                                       fresh=fresh, **extra))


def run_answer(app: Flask, script_root: str, caller: Caller, run: Run, status: int, *,
               fresh: bool = False, **extra: Any) -> JsonAnswer:
    """A run's answer, as `caller` may see it, with its URL in `Location`. `fresh`: a run the
    admit script just wrote for this caller, built from its reply (worker/core/runs.py
    `to_dict` is already the RunOut shape: not validated again on the hot path)."""
    return JsonAnswer(status,
                      {**(run.to_dict() if fresh else s.RunOut.of(caller.view(run))), **extra},
                      [("Location", run_url_of(app, script_root, run.run_id))])


@bp.get("/workflows", tags=[WORKFLOWS], responses=answers(_200=s.WorkflowList))
def list_workflows() -> Response:
    """Every workflow, with the run holding its slot, and how many workers are online."""
    return jsonify({"workflows": [s.WorkflowOut.of(w) for w in service().workflows()],
                    "workers_online": service().workers_online()})


@bp.get("/workflows/<path:workflow_id>", tags=[WORKFLOWS], responses=answers(
    _200=s.WorkflowOut, _400=s.InvalidRequestBody, _404=NO_WORKFLOW))
def get_workflow(path: s.WorkflowPath) -> Response:
    """One workflow, with its active run read in full and its input schema."""
    return jsonify(s.WorkflowOut.of(service().workflow(path.workflow_id), detail=True))


#: the 422s a trigger may answer (told apart by `error`)
TRIGGER_422 = s.one_of(s.InvalidInputBody, s.InvalidCallbackUrlBody, s.IdempotencyKeyReusedBody)


@bp.post("/workflows/<path:workflow_id>/test-runs", tags=[RUNS], responses=answers(
    _200=s.TriggeredRun, _202=s.TriggeredRun, _400=s.InvalidRequestBody,
    _404=NO_WORKFLOW, _409=s.RunInProgressBody, _413=s.PayloadTooLargeBody,
    _403=s.CrossSiteRequestBody, _415=s.UnsupportedMediaTypeBody,
    _422=TRIGGER_422, _429=s.RateLimitedBody))
def trigger(path: s.WorkflowPath, query: s.TriggerQuery, header: s.TriggerHeaders,
            body: s.TriggerBody) -> Response:
    """Start a test run: 202 "started" (queued, or pending with on_conflict=queue: it has not
    completed); 200 with `joined` for on_conflict=join.

    With `?wait=`: 200 and the whole run as soon as it ends, else 202 and the run as it is
    when the wait is over. 409 names the run in progress; 422 shows what in the input does not
    fit the workflow's schema; 429 says when to try again; 503: the queue is unavailable,
    nothing was taken."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if query.wait is None:
        return response_of(app, admit(app, request.script_root, g.caller, path, query, header,
                                      body))
    triggered = _triggered(app, request.script_root, g.caller, path, query, header, body)
    if isinstance(triggered, JsonAnswer):
        return response_of(app, triggered)
    run, busy = _wait(triggered.run, query.wait)
    resp = _run_response(run, 200 if run.terminal else 202,
                         workers_online=service().workers_online(),
                         **({"joined": True} if triggered.joined else {}))
    return _busy(resp) if busy else resp


def admit(app: Flask, script_root: str, caller: Caller, path: s.WorkflowPath,
          query: s.TriggerQuery, header: s.TriggerHeaders, body: s.TriggerBody) -> JsonAnswer:
    """A trigger's answer without `?wait=`: Flask's view, and the trigger's fast path with
    the same validated models (web/fast.py)."""
    triggered = _triggered(app, script_root, caller, path, query, header, body)
    if isinstance(triggered, JsonAnswer):
        return triggered
    return run_answer(app, script_root, caller, triggered.run,
                      202 if triggered.created else 200, fresh=triggered.created,
                      workers_online=app.extensions["testruns"].workers_online(),
                      **({"joined": True} if triggered.joined else {}))


def _triggered(app: Flask, script_root: str, caller: Caller, path: s.WorkflowPath,
               query: s.TriggerQuery, header: s.TriggerHeaders,
               body: s.TriggerBody) -> Triggered | JsonAnswer:
    """The service's trigger for this caller; its 409 as the answer."""
    caller.require_policy(query.on_conflict)
    svc: TestRunService = app.extensions["testruns"]
    try:
        return svc.trigger(
            path.workflow_id, body.input_object, on_conflict=query.on_conflict,
            idempotency_key=header.idempotency_key, triggered_by=caller.name,
            rate_key=caller.rate_key, callback_url=body.callback_url)
    except RunInProgress as exc:
        # the common refusal (every click while a run is in progress): rendered here by the one
        # renderer, not through Flask's exception handling, which costs the 409 more (profiled)
        return errors.answer_to(app, exc, script_root)


def _wait(run: Run | str, seconds: float) -> tuple[Run, bool]:
    """The run when it ends or the wait is over; (its current state, True) when every waiter
    of this process is taken, or it has no thread to wait on (web/waits.py)."""
    slots = waits.waiters()
    if waits.holds_its_process() or not slots.take():
        return (run if isinstance(run, Run) else service().run(run)), True
    try:
        return service().wait(run, seconds, gone=waits.client_gone()), False
    finally:
        slots.give_back()


def _busy(resp: Response) -> Response:
    resp.headers["Retry-After"] = str(waits.RETRY_AFTER_S)
    return resp


@bp.get("/workflows/<path:workflow_id>/test-runs", tags=[RUNS], responses=answers(
    _200=s.RunList, _400=s.InvalidRequestBody, _404=NO_WORKFLOW))
def list_runs(path: s.WorkflowPath, query: s.ListQuery) -> Response:
    """The workflow's newest runs first: summaries (no input, result or logs) unless
    `?fields=full`."""
    known = service().known_workflow(path.workflow_id)
    full = query.fields == "full"
    shape = s.RunOut.of if full else s.RunSummaryOut.of
    view = g.caller.view
    return jsonify({"runs": [shape(view(r)) for r in service().runs(known.id, query.limit,
                                                                    full=full)]})


@bp.get("/test-runs/<path:run_id>", tags=[RUNS], responses=answers(
    _200=s.RunOut, _400=s.InvalidRequestBody, _404=NO_RUN))
def get_run(path: s.RunPath, query: s.WaitQuery) -> Response:
    """A run, with its whole log. With `?wait=`: as soon as it ends, or as it is when the
    wait is over (200 either way: its `status` says which)."""
    if query.wait is None:
        return jsonify(s.RunOut.of(g.caller.view(service().run(path.run_id))))
    run, busy = _wait(path.run_id, query.wait)
    resp = jsonify(s.RunOut.of(g.caller.view(run)))
    return _busy(resp) if busy else resp


@bp.get("/test-runs/<path:run_id>/logs", tags=[RUNS], responses=answers(
    _200=s.LogPageOut, _400=s.InvalidRequestBody, _404=NO_RUN))
def get_run_logs(path: s.RunPath, query: s.LogsQuery) -> Response:
    """A page of the run's log lines, oldest first."""
    page = service().logs(path.run_id, query.offset, query.limit)
    return jsonify(s.LogPageOut.model_validate({
        "run_id": page.run_id, "offset": page.offset, "total": page.total,
        "lines": page.lines, "next_offset": page.next_offset}).model_dump(mode="json"))


@bp.post("/test-runs/<path:run_id>/cancel", tags=[RUNS], responses=answers(
    _202=s.CancelledRun, _403=s.CrossSiteRequestBody, _404=NO_RUN, _409=s.RunFinishedBody,
    _415=s.UnsupportedMediaTypeBody))
def cancel_run(path: s.RunPath) -> Response:
    """Cancel a pending, queued or running run: it reads `cancelled` when this answers; a
    running run's slot passes once its body has stopped."""
    return _run_response(service().cancel(path.run_id, only_by=g.caller.cancels_only_its_own),
                         202)
