"""One error type per client mistake (and per service failure), each rendered as JSON:
`{"error": "<stable_code>", "message": "...", ...data}` with the right HTTP status."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException


class ApiError(Exception):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def response(self) -> Response:
        resp = jsonify({"error": self.code, "message": self.message, **self.data})
        resp.status_code = self.status
        return resp


class InvalidRequest(ApiError):
    status, code = 400, "invalid_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class WorkflowNotFound(ApiError):
    status, code = 404, "workflow_not_found"


class TestRunNotFound(ApiError):
    __test__ = False
    status, code = 404, "test_run_not_found"


class TestRunInProgress(ApiError):
    __test__ = False
    status, code = 409, "test_run_in_progress"


class TestRunFinished(ApiError):
    __test__ = False
    status, code = 409, "test_run_finished"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class QueueUnavailable(ApiError):
    status, code = 503, "queue_unavailable"


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large",
               415: "unsupported_media_type", 400: "invalid_request"}


def register(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return exc.response()

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        message = exc.description or exc.name
        if status == 413:
            message = f"request body exceeds {app.config['MAX_CONTENT_LENGTH']} bytes"
        resp = jsonify({"error": code, "message": message})
        resp.status_code = status
        if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
            resp.headers["Allow"] = ", ".join(exc.valid_methods)
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error")
        resp = jsonify({"error": "internal_error", "message": "internal server error"})
        resp.status_code = 500
        return resp
