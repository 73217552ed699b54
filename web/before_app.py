"""What the HTTP server answers before the app runs, as the API's own JSON errors.

gunicorn refuses a request it cannot parse (a request line over `limit_request_line`, too many
or too large header fields, a malformed line or header) with an HTML page of its own, and so
does nginx in front of it (web/front.py): a status no route declared, a body no client of the
API can read (`make prove` met gunicorn's `414 URI Too Long` as HTML). Both now answer with the
error below for each status, rendered from the same classes as every other answer
(`{"error", "message"}`, web/problems.py): gunicorn through `JsonErrorsWorker`, the worker class
gunicorn.conf.py names (and `JsonErrorsSyncWorker`, the front's pool of short requests); nginx
through the error pages web/front.py writes into its config.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from worker.core.errors import PayloadTooLarge, TestRunError

from .errors import answer_of
from .problems import (
    AppUnavailable,
    HeadersTooLarge,
    HttpError,
    InternalError,
    InvalidRequest,
    NoSuchRoute,
    UriTooLong,
)

#: the largest request body nginx reads; a larger one the app never sees (its own limit, 64 KiB,
#: answers in the API's order of checks)
FRONT_MAX_BODY = 1024 * 1024

#: status the HTTP server would send → the error it answers instead (its status may differ: a
#: transfer coding or HTTP version nobody serves is a client's mistake, a 400, not a 5xx)
BEFORE_APP: dict[int, TestRunError] = {
    400: InvalidRequest("the request is not valid HTTP/1.1 (refused before it reached the "
                        "service)"),
    404: NoSuchRoute("no such route"),
    413: PayloadTooLarge(f"request body exceeds {FRONT_MAX_BODY} bytes"),
    414: UriTooLong("the request line (method, path and query) is too long"),
    431: HeadersTooLarge("the request's header fields are too large or too many"),
    500: InternalError("internal server error"),
    501: InvalidRequest("the request's Transfer-Encoding is not supported (only chunked is)"),
    503: AppUnavailable("the service is not answering; try again shortly", retry_after=1),
    505: InvalidRequest("the request's HTTP version is not supported (HTTP/1.0 and HTTP/1.1 "
                        "are)"),
}


def error_for(status: int, reason: str = "") -> TestRunError:
    """The error to answer instead of the server's own `status`."""
    return BEFORE_APP.get(status) or HttpError(status, reason or _phrase(status))


def answer(error: TestRunError) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and JSON body of `error`, as the app's renderer would give them."""
    found = answer_of(error)
    headers = {"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"}
    if found.retry_after:
        headers["Retry-After"] = str(error.data["retry_after"])
    return found.status, headers, json.dumps(error.body(), separators=(",", ":")).encode()


def write_json_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's `util.write_error`, writing the API's JSON error instead of an HTML page (its
    `mesg`, which may quote the request, stays in gunicorn's own log line)."""
    status, headers, body = answer(error_for(status_int, reason))
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    util.write_nonblock(sock, (f"HTTP/1.1 {status} {_phrase(status)}\r\nConnection: close\r\n"
                               f"{head}Content-Length: {len(body)}\r\n\r\n").encode() + body)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class JsonErrorsWorker(ThreadWorker):
    """gunicorn's gthread worker whose own error answers are the API's JSON errors.

    gunicorn writes them in one place, `util.write_error`, called only by the worker's
    `handle_error`; it is replaced in the worker process before the worker serves anything
    (a worker's module state is its own: the master and the other workers are untouched)."""

    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()


class JsonErrorsSyncWorker(SyncWorker):
    """The same, for gunicorn's sync worker: the front's pool of short requests (web/front.py)."""

    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()
