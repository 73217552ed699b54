"""Request bodies are JSON, declared as such: anything else is 415 `unsupported_media_type`.

A browser sends a cross-site POST without a CORS preflight when its content type is
`text/plain`, a form type or `multipart/form-data`, so a page on any site could post JSON
written as text to a service on 127.0.0.1. Requiring `Content-Type: application/json` on every
body makes such a request one that needs a preflight, which only CORS_ORIGINS pass. A request
with no body and no content type (a plain `curl -X POST`, the page's cancel) stays allowed; a
declared non-JSON type is refused even with an empty body, since the browser's form and text
posts always declare one.

A cross-site POST with no body at all (`fetch(url, {method: "POST", mode: "no-cors"})`) needs
no preflight either, so the browser's own word is also checked: a POST whose `Sec-Fetch-Site`
is `cross-site` or `same-site` (another port of localhost is the same site) is 403
`cross_site_request` unless its `Origin` is in CORS_ORIGINS. Clients that are not browsers
(curl, CI) send no such header and are not affected.
"""

from __future__ import annotations

from flask import Flask, request
from werkzeug.datastructures import Headers

from .problems import CrossSiteRequest, UnsupportedMediaType

#: methods whose body the API reads
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Sec-Fetch-Site values that mean another site's page sent it
FOREIGN_SITES = frozenset({"cross-site", "same-site"})


def is_json(mimetype: str) -> bool:
    """`application/json`, or a JSON-based type such as `application/merge-patch+json`."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json"))


def check(headers: Headers, mimetype: str, content_length: int | None,
          allowed: frozenset[str]) -> None:
    """415 for a body not declared as JSON, 403 for another site's page, of a request whose
    body the API reads (`headers`: request.headers, or a view of the environ's; `mimetype`: the
    declared type without its parameters): Flask's hook, and the trigger's fast path
    (web/fast.py)."""
    declared = headers.get("Content-Type")
    if declared is None:
        # no declared type: allowed only without a body (Content-Length 0 or absent)
        if content_length or headers.get("Transfer-Encoding"):
            raise UnsupportedMediaType(
                "a request body must be sent with Content-Type: application/json")
    elif not is_json(mimetype):
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {mimetype or declared!r}")
    if (headers.get("Sec-Fetch-Site") in FOREIGN_SITES
            and headers.get("Origin") not in allowed):
        raise CrossSiteRequest("a page of another site may not call this API (its origin "
                               "is not in CORS_ORIGINS)")


def register(app: Flask, cors_origins: tuple[str, ...] = ()) -> None:
    allowed = frozenset(cors_origins)

    @app.before_request
    def _json_bodies_only() -> None:
        if request.method in BODY_METHODS:
            check(request.headers, request.mimetype, request.content_length, allowed)
