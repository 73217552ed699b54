"""The trigger's fast path: `POST /api/workflows/<id>/test-runs` answered before Flask.

Why: profiled in-process (py-spy, the WSGI call of a 409), Flask's request context, routing,
hooks and response machinery were ~22 % of a conflict's cost — more than anything left but the
round trip itself (docs/BENCHMARKS.md). This WSGI layer sits inside the client's address
(exposure.FrontAddress) and before Flask, and answers the plain, common trigger without a
request context: the 202 of an admission, the 409 of a conflict, and whatever the same checks
refuse on the way (401, 403, 400, 404, 413 of the input, 415, 422, 429, 503).

It decides nothing of its own: each check is the function Flask's hook or view calls — the
Host (werkzeug's `get_host`, which Flask's routing calls with TRUSTED_HOSTS), the caller
(auth.identify), the body's type (bodies.check), the models (the route's validation Plan,
the body read by parse_json_body), the trigger and its answer (api.admit), errors
(errors.answer_to, errors.unexpected), the latency histogram (metrics.count) and the headers
(page.SECURITY_HEADERS) — in the order Flask runs them. The answer (encoding.JsonAnswer) is
written to WSGI here, with the body Flask's JSON provider gives and the headers werkzeug's
Response would send, in its order: werkzeug's Response, Headers and WSGI start were about half
of this path's own cost (cProfile of 3,000 409s). So an answer is Flask's, to the byte
(tests/integration/test_fast_path.py sends a corpus both ways and compares).

Everything else goes to Flask unchanged: another method or path shape, a workflow id outside
WORKFLOW_ID_PATTERN, a script root, any query but nothing or `on_conflict=reject|queue|join`
(`wait=`, `replace`, anything unknown), an `Origin` or `Sec-Fetch-Site` header (CORS and the
cross-site check read them), a content type other than exactly `application/json`, a body
of unknown size (no Content-Length, a transfer coding) or over MAX_BODY_BYTES, a body shorter
than its Content-Length, a Host Flask would refuse, a test client that keeps the context. And
the whole app goes to Flask when TEST_RUN_FAST_PATH=false, or when it has a hook, teardown,
signal receiver or error handler this path does not stand in for, another POST route under
/api/workflows/, or SERVER_NAME, host or subdomain matching (checked at its first request,
logged): what is added later cannot be skipped silently.
"""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Callable, Iterable
from typing import Any

import flask
from flask import Flask
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import SecurityError
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.utils import get_content_type
from werkzeug.wsgi import get_host

from worker.core.errors import TestRunError
from worker.core.keys import WORKFLOW_ID_RE
from worker.core.settings import Settings
from worker.core.status import ConflictPolicy

from . import api, auth, bodies, errors, metrics, page
from .encoding import FastJSON, JsonAnswer
from .schemas import MAX_DEPTH, parse_json_body
from .validation import Plan, plan_of

logger = logging.getLogger(__name__)

ENDPOINT = "api.trigger"
#: the environ key set on a request this path answered (tests tell the two paths apart by it)
ANSWERED = "testruns.fast_path"
JSON = "application/json"
_PATH = re.compile(r"/api/workflows/([^/]+)/test-runs")
#: the query strings it answers, as the query model reads them
QUERIES: dict[str, dict[str, str]] = {"": {}} | {
    f"on_conflict={p.value}": {"on_conflict": p.value}
    for p in (ConflictPolicy.REJECT, ConflictPolicy.QUEUE, ConflictPolicy.JOIN)}

#: what Flask runs around a request that this path stands in for, by (module, qualified name)
STANDS_IN_FOR = {
    "before_request": {("web.metrics", "_started"),
                       ("web.exposure", "configure.<locals>._host_first"),
                       ("web.auth", "register.<locals>._identify"),
                       ("web.bodies", "register.<locals>._json_bodies_only")},
    "after_request": {("web.page", "register.<locals>._headers"), ("web.metrics", "_observe")},
    "errorhandler": {("web.errors", "render"), ("web.errors", "_from_http"),
                     ("web.errors", "_unexpected")},
}
#: Flask's signals around a request: none may have a receiver
SIGNALS = (flask.request_started, flask.request_finished, flask.request_tearing_down,
           flask.got_request_exception, flask.appcontext_pushed, flask.appcontext_popped,
           flask.appcontext_tearing_down)

#: Host checks kept per process (web/fast.py FastTrigger._trusted)
HOSTS_KEPT = 64

WSGIApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


def wrap(app: Flask, settings: Settings, inner: WSGIApp) -> WSGIApp:
    """`inner` (Flask's WSGI app) behind the fast path, or as it is when it is off."""
    if not settings.fast_path:
        return inner
    plan = plan_of(app.view_functions[ENDPOINT])
    if plan is None:  # validation.install did not plan the trigger: nothing to share
        logger.warning("the trigger's fast path is off: the trigger's view is not planned")
        return inner
    if not isinstance(app.json, FastJSON) or app.response_class is not flask.Response:
        logger.warning("the trigger's fast path is off: the app's JSON provider or response "
                       "class is not the one whose answers it writes")
        return inner
    return FastTrigger(app, settings, inner, plan)


def _names(funcs: Iterable[Callable[..., Any]]) -> set[tuple[str, str]]:
    return {(f.__module__, f.__qualname__) for f in funcs}


def unmirrored(app: Flask) -> list[str]:
    """What the app runs around a request that this path does not (empty: it may answer)."""
    found: list[str] = []
    for kind, registry in (("before_request", app.before_request_funcs),
                           ("after_request", app.after_request_funcs),
                           ("teardown_request", app.teardown_request_funcs),
                           ("url_value_preprocessor", app.url_value_preprocessors)):
        for scope, funcs in registry.items():
            extra = _names(funcs) - STANDS_IN_FOR.get(kind, set())
            found += [f"{kind} {scope or 'app'}: {m}.{q}" for m, q in sorted(extra)]
    found += [f"teardown_appcontext: {m}.{q}"
              for m, q in sorted(_names(app.teardown_appcontext_funcs))]
    for scope, by_code in app.error_handler_spec.items():
        for handlers in by_code.values():
            extra = _names(handlers.values()) - STANDS_IN_FOR["errorhandler"]
            found += [f"errorhandler {scope or 'app'}: {m}.{q}" for m, q in sorted(extra)]
    found += [f"signal {s.name}" for s in SIGNALS if s.receivers]
    # its paths are the trigger's alone, matched as Flask's routing would (no host or
    # subdomain matching, no SERVER_NAME)
    found += [f"route {rule.rule} ({rule.endpoint})" for rule in app.url_map.iter_rules()
              if rule.endpoint != ENDPOINT and "POST" in (rule.methods or ())
              and rule.rule.startswith("/api/workflows/")]
    if app.config["SERVER_NAME"] or app.url_map.host_matching or app.subdomain_matching:
        found.append("SERVER_NAME, host or subdomain matching")
    return found


class FastTrigger:
    """The WSGI layer: a plain trigger answered here, anything else handed to `inner`."""

    def __init__(self, app: Flask, settings: Settings, inner: WSGIApp, plan: Plan) -> None:
        self.app = app
        self.inner = inner
        rule = app.url_map._rules_by_endpoint[ENDPOINT][0]
        self.route = rule.rule
        self.plan = plan
        self.allowed = frozenset(settings.cors_origins)
        self.tokens: auth.Tokens = app.extensions[auth.TOKENS]
        self.json: FastJSON = app.json  # type: ignore[assignment]
        #: what werkzeug's Response sends for the provider's mimetype
        self.content_type = get_content_type(self.json.mimetype, "utf-8")
        #: whether the app runs nothing around a request but what this stands in for: asked
        #: at the first request (every hook is registered by then)
        self.serves: bool | None = None
        self._hosts: dict[tuple[Any, ...], bool] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        plain = self._plain(environ)
        if plain is None:
            return self.inner(environ, start_response)
        workflow_id, args, length = plain
        body = environ["wsgi.input"].read(length) if length else b""
        if len(body) != length:  # cut short: Flask's stream says how
            environ["wsgi.input"] = io.BytesIO(body)
            return self.inner(environ, start_response)
        started = time.perf_counter()
        environ[ANSWERED] = True
        try:
            answer = self._answer(environ, workflow_id, args, body, length)
        except TestRunError as exc:
            answer = errors.answer_to(self.app, exc)
        except Exception:  # noqa: BLE001 - as Flask's handler: logged, internal_error
            answer = errors.unexpected(self.app)
        try:
            payload = self.json.text(answer.body).encode()
        except Exception:  # noqa: BLE001 - as Flask's handler: logged, internal_error
            answer = errors.unexpected(self.app)
            payload = self.json.text(answer.body).encode()
        metrics.count(self.route, "POST", answer.status, started, lambda: answer.body)
        # werkzeug's order: its Content-Type and Content-Length, the answer's own, then the
        # after-request hook's (page.security_headers)
        start_response(self._status_line(answer.status),
                       [("Content-Type", self.content_type),
                        ("Content-Length", str(len(payload))), *answer.headers,
                        *page.SECURITY_HEADERS])
        return [payload]

    @staticmethod
    def _status_line(status: int) -> str:
        """werkzeug's status line for `status` (Response.status)."""
        return f"{status} {HTTP_STATUS_CODES.get(status, 'unknown').upper()}"

    def _plain(self, environ: dict[str, Any]) -> tuple[str, dict[str, str], int] | None:
        """The workflow id, query arguments and body length of a request this path answers;
        None: Flask's."""
        if environ.get("REQUEST_METHOD") != "POST" or environ.get("SCRIPT_NAME"):
            return None
        found = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        args = QUERIES.get(environ.get("QUERY_STRING", ""))
        length = environ.get("CONTENT_LENGTH", "")
        if (found is None or args is None or not WORKFLOW_ID_RE.fullmatch(found[1])
                or environ.get("CONTENT_TYPE") != JSON or not length.isascii()
                or not length.isdigit() or int(length) > self.app.config["MAX_CONTENT_LENGTH"]
                or "HTTP_TRANSFER_ENCODING" in environ or "HTTP_ORIGIN" in environ
                or "HTTP_SEC_FETCH_SITE" in environ
                or "werkzeug.debug.preserve_context" in environ):
            return None
        if not self._trusted(environ):
            return None
        if self.serves is None:
            missing = unmirrored(self.app)
            if missing:
                logger.warning("the trigger's fast path is off: the app runs what it does not "
                               "(%s); Flask answers every request", "; ".join(missing))
            self.serves = not missing
        return (found[1], args, int(length)) if self.serves else None

    def _trusted(self, environ: dict[str, Any]) -> bool:
        """Whether Flask's routing would accept the request's Host (werkzeug's `get_host`
        with TRUSTED_HOSTS raises SecurityError otherwise). Its answer depends on the four
        values of the key alone, so it is kept per key (a few per process; at most
        HOSTS_KEPT, then started again)."""
        key = (environ.get("wsgi.url_scheme"), environ.get("HTTP_HOST"),
               environ.get("SERVER_NAME"), environ.get("SERVER_PORT"))
        found = self._hosts.get(key)
        if found is None:
            try:
                get_host(environ, self.app.config["TRUSTED_HOSTS"])
                found = True
            except SecurityError:
                found = False
            if len(self._hosts) >= HOSTS_KEPT:
                self._hosts.clear()
            self._hosts[key] = found
        return found

    def _answer(self, environ: dict[str, Any], workflow_id: str, args: dict[str, str],
                body: bytes, length: int) -> JsonAnswer:
        """Flask's order: the caller (401, 403), the body's type, the models (400), then
        the trigger (api.admit)."""
        caller = auth.identify(self.tokens, path=environ["PATH_INFO"], method="POST",
                               authorization=environ.get("HTTP_AUTHORIZATION", ""),
                               remote_addr=environ.get("REMOTE_ADDR"), endpoint=ENDPOINT,
                               rule=self.route)
        bodies.check(EnvironHeaders(environ), JSON, length, self.allowed)
        kwargs = self.plan.read(environ, {"workflow_id": workflow_id}, lambda: args,
                                lambda: parse_json_body(body, self.app.config[MAX_DEPTH]))
        return api.admit(self.app, "", caller, **kwargs)
