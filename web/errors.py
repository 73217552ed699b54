"""Every error answers as JSON `{"error": "<stable_code>", "message": "…", …data}` with its
HTTP status. The errors are the service's (worker/core/errors.py: codes and data, no HTTP) and
the web's own (web/problems.py); `ANSWERS` below is the one table of what each answers over
HTTP. Flask's own errors (unknown route, wrong method, body too large) are mapped onto them,
and anything unexpected is a logged `internal_error`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, SecurityError

from worker.core.errors import (
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

from .encoding import JsonAnswer, response_of, run_url_of
from .problems import (
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


@dataclass(frozen=True, slots=True)
class Answer:
    """What one error class answers over HTTP besides its body."""

    status: int
    #: the body gains `status_url`, the read route of the run in `data["run_id"]`
    links_run: bool = False
    #: a `Retry-After` header says `data["retry_after"]` (whole seconds), as the body does
    retry_after: bool = False


#: every error → its answer (the README's bad-input table rests on it); `HttpError` alone
#: brings its own status (`answer_of`)
ANSWERS: dict[type[TestRunError], Answer] = {
    # the web's own
    InvalidRequest: Answer(400),
    HostNotAllowed: Answer(400),
    Unauthorized: Answer(401),
    CrossSiteRequest: Answer(403),
    NoSuchRoute: Answer(404),
    MethodNotAllowed: Answer(405),
    UnsupportedMediaType: Answer(415),
    InternalError: Answer(500),
    TooManyStreams: Answer(503, retry_after=True),
    TooManyClientStreams: Answer(429, retry_after=True),
    NotReady: Answer(503),
    # what the HTTP server answers before the app runs (web/before_app.py)
    UriTooLong: Answer(414),
    HeadersTooLarge: Answer(431),
    AppUnavailable: Answer(503, retry_after=True),
    # the service's
    WorkflowNotFound: Answer(404),
    RunNotFound: Answer(404),
    RunInProgress: Answer(409, links_run=True, retry_after=True),
    RunFinished: Answer(409),
    PayloadTooLarge: Answer(413),
    InvalidInput: Answer(422),
    InvalidCallbackUrl: Answer(422),
    IdempotencyKeyReused: Answer(422, links_run=True),
    Forbidden: Answer(403),
    RateLimited: Answer(429, retry_after=True),
    QueueUnavailable: Answer(503),
}

#: werkzeug's statuses → our errors
_FROM_HTTP: dict[int, type[TestRunError]] = {
    400: InvalidRequest, 404: NoSuchRoute, 405: MethodNotAllowed, 413: PayloadTooLarge,
}


def answer_of(exc: TestRunError) -> Answer:
    if isinstance(exc, HttpError):
        return Answer(exc.status)
    return ANSWERS[type(exc)]


def render(exc: TestRunError) -> Response:
    """The one renderer of an error body, in a request: every error answer goes through
    `answer`."""
    return answer(current_app._get_current_object(),  # type: ignore[attr-defined]
                  exc, request.script_root)


def answer(app: Flask, exc: TestRunError, script_root: str = "") -> Response:
    """`exc`'s answer from `app` (its JSON provider, its run URLs behind `script_root`): what
    `render` gives in a request."""
    return response_of(app, answer_to(app, exc, script_root))


def answer_to(app: Flask, exc: TestRunError, script_root: str = "") -> JsonAnswer:
    """`answer` before it is a Response: the one place an error's status, body and headers
    are made (the trigger's fast path writes it itself: web/fast.py)."""
    found = answer_of(exc)
    body = exc.body()
    if found.links_run:
        body["status_url"] = run_url_of(app, script_root, exc.data["run_id"])
    headers = [("Retry-After", str(exc.data["retry_after"]))] if found.retry_after else []
    return JsonAnswer(found.status, body, headers)


def _from_http(exc: HTTPException) -> Response:
    if isinstance(exc, SecurityError):  # Flask's TRUSTED_HOSTS check (web/exposure.py)
        return render(HostNotAllowed("the Host header is not one this service answers"))
    status = exc.code or 500
    cls = _FROM_HTTP.get(status)
    message = exc.description or exc.name
    if cls is None:  # a werkzeug status we never produce on purpose: pass it through as is
        return render(HttpError(status, message))
    if cls is PayloadTooLarge:
        message = f"request body exceeds {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    resp = render(cls(message))
    if cls is MethodNotAllowed and getattr(exc, "valid_methods", None):
        resp.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return resp


def _unexpected(exc: Exception) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    return response_of(app, unexpected(app))


def unexpected(app: Flask) -> JsonAnswer:
    """A bug's answer, called while its exception is handled: logged with the traceback,
    the client told nothing more (Flask's handler, and the trigger's fast path)."""
    app.logger.exception("unhandled error")
    return answer_to(app, InternalError("internal server error"))


def register(app: Flask) -> None:
    app.register_error_handler(TestRunError, render)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(Exception, _unexpected)
