"""The error tree: every error the API can return, its stable code and HTTP status, in one
table (docs/api.md's bad-input table rests on it); the service's errors are in the core and
know no HTTP, the web's own are in web/, and the web's table maps both."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from flask import Flask

from tests.support.errors import every_error
from web.errors import ANSWERS, register, render
from web.problems import (
    AppUnavailable,
    CrossSiteRequest,
    HeadersTooLarge,
    HostNotAllowed,
    HttpError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NoSuchRoute,
    NotReady,
    TooManyClientStreams,
    TooManyStreams,
    Unauthorized,
    UnsupportedMediaType,
    UriTooLong,
)
from worker.core import errors as core_errors
from worker.core.errors import (
    Dependency,
    Forbidden,
    IdempotencyKeyReused,
    InvalidCallbackUrl,
    InvalidInput,
    PayloadTooLarge,
    QueueUnavailable,
    RateLimited,
    RunFinished,
    RunInProgress,
    RunNotFound,
    TestRunError,
    WorkflowNotFound,
)
from worker.core.runs import Run
from worker.core.status import RunStatus

ROOT = Path(__file__).resolve().parents[2]

#: the service's errors: raised in worker/, known to every caller
DOMAIN = {
    PayloadTooLarge: ("payload_too_large", 413),
    WorkflowNotFound: ("workflow_not_found", 404),
    RunNotFound: ("test_run_not_found", 404),
    RunInProgress: ("test_run_in_progress", 409),
    RunFinished: ("test_run_finished", 409),
    QueueUnavailable: ("queue_unavailable", 503),
    RateLimited: ("rate_limited", 429),
    IdempotencyKeyReused: ("idempotency_key_reused", 422),
    Forbidden: ("forbidden", 403),
    InvalidInput: ("invalid_input", 422),
    InvalidCallbackUrl: ("invalid_callback_url", 422),
}
#: the web's own: only the HTTP face raises them
WEB = {
    InvalidRequest: ("invalid_request", 400),
    HostNotAllowed: ("host_not_allowed", 400),
    Unauthorized: ("unauthorized", 401),
    NoSuchRoute: ("not_found", 404),
    MethodNotAllowed: ("method_not_allowed", 405),
    InternalError: ("internal_error", 500),
    TooManyStreams: ("too_many_streams", 503),
    TooManyClientStreams: ("too_many_client_streams", 429),
    UnsupportedMediaType: ("unsupported_media_type", 415),
    CrossSiteRequest: ("cross_site_request", 403),
    NotReady: ("not_ready", 503),
    UriTooLong: ("uri_too_long", 414),
    HeadersTooLarge: ("headers_too_large", 431),
    AppUnavailable: ("app_unavailable", 503),
}
TABLE = DOMAIN | WEB
#: werkzeug's status passed through: its own status, no route declares it
PASSED_THROUGH = {HttpError}


def test_every_error_has_its_code_and_status():
    assert every_error() - PASSED_THROUGH == set(TABLE) == set(ANSWERS)
    for cls, (code, status) in TABLE.items():
        assert (cls.code, ANSWERS[cls].status) == (code, status), cls


def test_the_core_holds_the_services_errors_and_the_web_its_own():
    core = {cls for _, cls in inspect.getmembers(core_errors, inspect.isclass)
            if issubclass(cls, TestRunError) and cls is not TestRunError}
    assert core == set(DOMAIN)
    assert {cls.__module__ for cls in WEB.keys() | PASSED_THROUGH} == {"web.problems"}


def test_the_cores_errors_know_no_http():
    """No status, header or URL in the core: those are the web's (web/errors.py ANSWERS)."""
    tree = ast.parse((ROOT / "worker" / "core" / "errors.py").read_text())
    named = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    named |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert not named & {"http_status", "headers", "links_run", "status_url"}
    for cls in DOMAIN:
        assert not any(hasattr(cls, a) for a in ("http_status", "headers", "links_run")), cls


def test_every_domain_error_is_raised_by_the_service_side():
    """An error of the core that only the web raises belongs in web/problems.py."""
    raised = set()
    for path in (ROOT / "worker").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
                    and isinstance(node.exc.func, ast.Name)):
                raised.add(node.exc.func.id)
    assert {cls.__name__ for cls in DOMAIN} <= raised


def code_spellings() -> dict[str, list[str]]:
    """Where each error code is written as a string in web/ and worker/ (Python; the page's
    app.js is a client of the API and reads the code as one)."""
    codes = {cls.code for cls in every_error()}
    found: dict[str, list[str]] = {code: [] for code in codes}
    for path in [*(ROOT / "web").rglob("*.py"), *(ROOT / "worker").rglob("*.py")]:
        if path == ROOT / "worker" / "core" / "status.py":
            continue  # the runs' vocabulary, another contract (ErrorType.WORKFLOW_NOT_FOUND)
        tree = ast.parse(path.read_text())
        exported = {id(n) for a in ast.walk(tree) if isinstance(a, ast.Assign)
                    and any(isinstance(x, ast.Name) and x.id == "__all__" for x in a.targets)
                    for n in ast.walk(a.value)}  # names, not codes (`invalid_request()`)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and node.value in found
                    and id(node) not in exported):
                found[node.value].append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_each_code_is_written_once_on_its_error_class():
    """Body models, the renderer, routes and health checks take a code from its class."""
    spelled = code_spellings()
    assert {code: where for code, where in spelled.items() if len(where) != 1} == {}
    for cls in every_error():
        (where,) = spelled[cls.code]
        module = ROOT.joinpath(*cls.__module__.split(".")).with_suffix(".py")
        assert where.startswith(str(module.relative_to(ROOT))), (cls, where)


def test_errors_carry_their_data_into_the_body():
    run = Run(run_id="e-" + "0" * 32, workflow_id="e", status=RunStatus.CANCELLED)
    assert RunFinished(run).body() == {
        "error": "test_run_finished",
        "message": f"test run {run.run_id} already ended: {RunStatus.CANCELLED}",
        "run_id": run.run_id, "status": RunStatus.CANCELLED}
    busy = RunInProgress("e", run.run_id)
    assert busy.body()["run_id"] == run.run_id and ANSWERS[RunInProgress].links_run
    down = QueueUnavailable(Dependency.BROKER, ConnectionRefusedError("refused"))
    assert down.body()["what"] == "broker" and ANSWERS[QueueUnavailable].status == 503
    assert InvalidRequest("bad", field="limit").body() == {
        "error": "invalid_request", "message": "bad", "field": "limit"}


@pytest.fixture
def app():
    """Just enough of the app for the renderer: the run's read route, for `status_url`."""
    app = Flask(__name__)
    app.add_url_rule("/api/test-runs/<path:run_id>", "api.get_run", lambda run_id: "")
    with app.test_request_context():
        yield app


def test_waits_are_told_in_a_retry_after_header(app):
    limited = render(RateLimited("2/minute", 12.4))
    assert (limited.status_code, limited.headers["Retry-After"]) == (429, "12")
    assert limited.get_json()["retry_after"] == 12
    streams = render(TooManyStreams(4, 5))
    assert (streams.status_code, streams.headers["Retry-After"]) == (503, "5")
    assert "Retry-After" not in render(InvalidRequest("bad")).headers


def test_a_refusal_naming_a_run_links_to_it(app):
    for exc in (RunInProgress("e", "e-1"), IdempotencyKeyReused("e-1")):
        resp = render(exc)
        assert resp.get_json()["status_url"] == "/api/test-runs/e-1", exc
    assert "status_url" not in render(RunNotFound("e-1")).get_json()


def test_not_ready_names_what_is_down(app):
    resp = render(NotReady(["broker"], {"redis": "ok", "broker": "down"}, None))
    assert resp.status_code == 503
    assert resp.get_json() == {"error": "not_ready", "message": "unreachable: broker",
                               "checks": {"redis": "ok", "broker": "down"},
                               "workers_online": None}


def test_a_werkzeug_status_we_never_produce_passes_through_the_renderer():
    app = Flask(__name__)
    register(app)

    @app.get("/teapot")
    def teapot():
        from werkzeug.exceptions import ImATeapot
        raise ImATeapot()

    resp = app.test_client().get("/teapot")
    assert resp.status_code == 418
    body = resp.get_json()
    assert body["error"] == HttpError.code and set(body) == {"error", "message"}
