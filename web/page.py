"""The page at `/` (web/static/: plain HTML, JS and CSS, no build step) and the headers every
answer carries: a Content-Security-Policy with no inline script, `nosniff`, and CORS only for
the origins in CORS_ORIGINS.

The page sends the API token (when the service has one) as a bearer header from
sessionStorage; it never uses cookies, so there is nothing for another site to ride on.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, request, send_from_directory

STATIC = Path(__file__).parent / "static"

bp = Blueprint("page", __name__, static_folder=str(STATIC), static_url_path="/static")

#: scripts, styles and connections from this origin only; nothing inline, no frames
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
#: request headers a cross-origin caller may send, and response headers it may read
CORS_ALLOW_HEADERS = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID"
CORS_EXPOSE_HEADERS = "Location, Retry-After"
#: the headers every answer carries, in this order: the first always set, the others only
#: where the answer has not set its own (the trigger's fast path appends them: its answers
#: set none of them)
SECURITY_HEADERS = (("X-Content-Type-Options", "nosniff"), ("Content-Security-Policy", CSP),
                    ("Referrer-Policy", "no-referrer"))


@bp.get("/")
def index() -> Response:
    resp = send_from_directory(STATIC, "index.html", max_age=0)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


def security_headers(resp: Response, origin: str | None, method: str,
                     allowed: frozenset[str]) -> Response:
    """The headers every answer carries, and CORS for an `origin` in `allowed`: Flask's
    after-request hook (the trigger's fast path appends SECURITY_HEADERS: web/fast.py)."""
    (name, value), *defaults = SECURITY_HEADERS
    resp.headers[name] = value
    for name, value in defaults:
        resp.headers.setdefault(name, value)
    if origin and origin in allowed:
        resp.headers["Access-Control-Allow-Origin"] = origin
        resp.headers["Access-Control-Expose-Headers"] = CORS_EXPOSE_HEADERS
        resp.headers.add("Vary", "Origin")
        if method == "OPTIONS":
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST"
            resp.headers["Access-Control-Allow-Headers"] = CORS_ALLOW_HEADERS
            resp.headers["Access-Control-Max-Age"] = "600"
    return resp


def register(app: Flask, cors_origins: tuple[str, ...]) -> None:
    app.register_blueprint(bp)
    allowed = frozenset(cors_origins)

    @app.after_request
    def _headers(resp: Response) -> Response:
        return security_headers(resp, request.headers.get("Origin"), request.method, allowed)
