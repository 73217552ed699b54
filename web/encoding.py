"""JSON out, and a run's URL, at a constant small cost per answer.

Flask's provider calls `json.dumps(obj, **kwargs)` for every answer, which builds a new
`JSONEncoder` each time because the keyword arguments are not the defaults; `FastJSON` builds
its compact encoder once per app (the same C encoder, the same output: compact separators, key
order kept, ASCII escapes, Flask's `default` for dates, dataclasses and the like). And
`run_url` is `url_for("api.get_run", run_id=…)` without building the URL through the routing
map on every 202 and 409 (the route's prefix is read from the map once per app).
"""

from __future__ import annotations

import json
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
        if self.compact is False or (self.compact is None and self._app.debug):
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        return self._app.response_class(self._compact.encode(obj) + "\n",
                                        mimetype=self.mimetype)


def json_answer(app: Flask, obj: Any) -> flask.Response:
    """`jsonify(obj)` as `app` answers it, without an app context (the trigger's fast path
    has none: web/fast.py)."""
    return cast(flask.Response, app.json.response(obj))


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
