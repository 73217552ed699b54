"""Request bodies are JSON, declared as such: anything else is 415 `unsupported_media_type`.

A browser sends a cross-site POST without a CORS preflight when its content type is
`text/plain`, a form type or `multipart/form-data`, so a page on any site could post JSON
written as text to a service on 127.0.0.1. Requiring `Content-Type: application/json` on every
body makes such a request one that needs a preflight, which only CORS_ORIGINS pass. A request
with no body and no content type (a plain `curl -X POST`, the page's cancel) stays allowed; a
declared non-JSON type is refused even with an empty body, since the browser's form and text
posts always declare one.
"""

from __future__ import annotations

from flask import Flask, request

from worker.errors import UnsupportedMediaType

#: methods whose body the API reads
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_json(mimetype: str) -> bool:
    """`application/json`, or a JSON-based type such as `application/merge-patch+json`."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))


def register(app: Flask) -> None:
    @app.before_request
    def _json_bodies_only() -> None:
        if request.method not in BODY_METHODS:
            return
        declared = request.headers.get("Content-Type")
        if declared is None:
            # no declared type: allowed only without a body (Content-Length 0 or absent)
            if request.content_length or request.headers.get("Transfer-Encoding"):
                raise UnsupportedMediaType(
                    "a request body must be sent with Content-Type: application/json")
            return
        if not is_json(request.mimetype):
            raise UnsupportedMediaType(
                f"Content-Type must be application/json, got {request.mimetype or declared!r}")
