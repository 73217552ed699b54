"""Every error answers as JSON `{"error": "<stable_code>", "message": "…", …data}` with its
HTTP status. The codes and statuses are the error tree's (worker/core/errors.py); Flask's own errors
(unknown route, wrong method, body too large) are mapped onto it, and anything unexpected is a
logged `internal_error`."""

from __future__ import annotations

from flask import Flask, Response, current_app, jsonify, url_for
from werkzeug.exceptions import HTTPException, SecurityError

from worker.core.errors import (
    HostNotAllowed,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NoSuchRoute,
    PayloadTooLarge,
    TestRunError,
)

#: werkzeug's statuses → our errors
_FROM_HTTP: dict[int, type[TestRunError]] = {
    400: InvalidRequest, 404: NoSuchRoute, 405: MethodNotAllowed, 413: PayloadTooLarge,
}


def render(exc: TestRunError) -> Response:
    body = exc.body()
    if exc.links_run:
        body["status_url"] = url_for("api.get_run", run_id=exc.data["run_id"])
    resp = jsonify(body)
    resp.status_code = exc.http_status
    resp.headers.update(exc.headers())
    return resp


def _from_http(exc: HTTPException) -> Response:
    if isinstance(exc, SecurityError):  # Flask's TRUSTED_HOSTS check (web/exposure.py)
        return render(HostNotAllowed("the Host header is not one this service answers"))
    status = exc.code or 500
    cls = _FROM_HTTP.get(status)
    if cls is None:  # a werkzeug status we never produce on purpose: pass it through as is
        resp = jsonify({"error": "http_error", "message": exc.description or exc.name})
        resp.status_code = status
        return resp
    message = exc.description or exc.name
    if cls is PayloadTooLarge:
        message = f"request body exceeds {current_app.config['MAX_CONTENT_LENGTH']} bytes"
    resp = render(cls(message))
    if cls is MethodNotAllowed and getattr(exc, "valid_methods", None):
        resp.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return resp


def _unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unhandled error")
    return render(InternalError("internal server error"))


def register(app: Flask) -> None:
    app.register_error_handler(TestRunError, render)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(Exception, _unexpected)
