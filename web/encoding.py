"""JSON out, and a run's URL, at a constant small cost per answer.

Flask's provider calls `json.dumps(obj, **kwargs)` for every answer, which builds a new
`JSONEncoder` each time because the keyword arguments are not the defaults; `FastJSON` builds
its compact encoder once per app (the same C encoder, the same output: compact separators, key
order kept, ASCII escapes, Flask's `default` for dates, dataclasses and the like). And
`run_url` is `url_for("api.get_run", run_id=…)` without building the URL through the routing
map on every 202 and 409 (the route's prefix is read from the map once per app).

`JsonAnswer` is an answer before it is a Response: Flask's views make one of it
(`response_of`), and the trigger's fast path writes it to WSGI itself (web/fast.py), without
werkzeug's Response, its Headers and its WSGI start, which profiled at about half of the fast
path's own cost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import quote

import flask
from flask import Flask, current_app, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.sansio.response import Response

#: the endpoint whose URL a run's answers link (`Location`, `status_url`)
RUN_ENDPOINT = "api.get_run"
#: werkzeug's converters quote a path value with these left as they are (BaseConverter.to_url)
_SAFE = "!$&'()*+,/:;=@"
_PREFIX = "testruns.run_url_prefix"


class FastJSON(DefaultJSONProvider):
    """Flask's default JSON provider, with its compact encoder made once (keys in the order
    they were written: answers read in the order their models declare them)."""

    sort_keys = False

    def __init__(self, app: Flask) -> None:
        super().__init__(app)
        self._compact = json.JSONEncoder(default=self.default, ensure_ascii=self.ensure_ascii,
                                         sort_keys=self.sort_keys, separators=(",", ":"))

    def response(self, *args: Any, **kwargs: Any) -> Response:
        return self._app.response_class(self.text(self._prepare_response_obj(args, kwargs)),
                                        mimetype=self.mimetype)

    def text(self, obj: Any) -> str:
        """The body `response` answers for `obj`: Flask's (indented when the app is in debug
        and `compact` is unset)."""
        if self.compact is False or (self.compact is None and self._app.debug):
            return f"{self.dumps(obj, indent=2)}\n"
        return self._compact.encode(obj) + "\n"


@dataclass(slots=True)
class JsonAnswer:
    """An answer's status, JSON body and headers (besides Content-Type and Content-Length,
    which follow from the body), in the order they are set."""

    status: int
    body: Any
    headers: list[tuple[str, str]] = field(default_factory=list)


def response_of(app: Flask, answer: JsonAnswer) -> flask.Response:
    """`answer` as `app`'s Response (a view's return)."""
    resp = cast(flask.Response, app.json.response(answer.body))
    resp.status_code = answer.status
    for name, value in answer.headers:
        resp.headers[name] = value
    return resp


def run_url(run_id: str) -> str:
    """The read route's URL of `run_id`, as url_for gives it (behind the app's script root)."""
    return run_url_of(current_app._get_current_object(),  # type: ignore[attr-defined]
                      request.script_root, run_id)


def run_url_of(app: Flask, script_root: str, run_id: str) -> str:
    """`run_url` for an app and a script root given (the trigger's fast path has no request
    context: web/fast.py)."""
    prefix = app.extensions.get(_PREFIX)
    if prefix is None:
        rule = app.url_map._rules_by_endpoint[RUN_ENDPOINT][0].rule
        prefix = app.extensions[_PREFIX] = rule.split("<", 1)[0]
    return f"{script_root}{prefix}{quote(run_id, safe=_SAFE)}"
