"""Every error answers as JSON `{"error": "<stable_code>", "message": "…", …data}` with its
HTTP status: the service's errors (worker/errors.py) by one handler, Flask's own (unknown
route, wrong method, body too large) by another, and anything unexpected as a 500 that is
logged."""

from __future__ import annotations

from flask import Flask, Response, jsonify, url_for
from werkzeug.exceptions import HTTPException

from worker.errors import TestRunError

#: Flask/werkzeug statuses → our stable codes
_HTTP_CODES = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large"}


def render(exc: TestRunError) -> Response:
    body = exc.body()
    if exc.links_run:
        body["status_url"] = url_for("api.get_run", run_id=exc.data["run_id"])
    resp = jsonify(body)
    resp.status_code = exc.http_status
    return resp


def register(app: Flask) -> None:
    app.register_error_handler(TestRunError, render)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 413:
            message = f"request body exceeds {app.config['MAX_CONTENT_LENGTH']} bytes"
        resp = jsonify({"error": _HTTP_CODES.get(status, "http_error"), "message": message})
        resp.status_code = status
        if status == 405 and getattr(exc, "valid_methods", None):
            resp.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error")
        resp = jsonify({"error": "internal_error", "message": "internal server error"})
        resp.status_code = 500
        return resp
