"""Request validation, planned once per route instead of on every request.

The routes declare their request models as flask-openapi3 reads them (`path`, `query`,
`header`, `body` parameters; web/schemas/), and the OpenAPI document is still generated from
those declarations when a blueprint is registered. What flask-openapi3 then does on every
request — ask each query and header model for its JSON schema, copy every header and query
argument into a dict, walk each model's fields — cost a trigger about a fifth of its Python
(profiled: py-spy on a gunicorn worker under wrk, and cProfile in-process). `install()`
replaces each such route's view, after registration, by one that reads exactly the fields
each model declares (their names or aliases, found once) and validates them with the model's
own validator, in flask-openapi3's order (header, path, query, body), so the first failing
part names the same field. A failure is the same 400 `invalid_request` (web/schemas/
`invalid_request`), raised to the one error renderer. A header is read from the WSGI environ
under the name werkzeug's EnvironHeaders would look up, and a request without a query string
parses none (together 13 → 9 µs a trigger, measured).

A route with a part this does not plan (cookies, a form, the raw request) keeps
flask-openapi3's view.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, request
from pydantic import BaseModel, ValidationError

from .schemas import invalid_request

#: the parts this plans, in the order flask-openapi3 validates them
PARTS = ("header", "path", "query", "body")
#: the parts it does not: such a route keeps flask-openapi3's view
UNPLANNED = frozenset({"cookie", "form", "raw"})


@dataclass(frozen=True, slots=True)
class _Fields:
    """A query or header model and the keys its fields are read under."""

    model: type[BaseModel]
    keys: tuple[str, ...]
    #: a model that forbids unknown fields must see them all (none of ours does today)
    everything: bool
    #: each key's name in the WSGI environ, for a header model (`Idempotency-Key` →
    #: `HTTP_IDEMPOTENCY_KEY`, as werkzeug's EnvironHeaders looks it up)
    environ_keys: tuple[str, ...] = ()

    @classmethod
    def of(cls, model: type[BaseModel], *, header: bool = False) -> _Fields:
        for name, field in model.model_fields.items():
            if typing.get_origin(field.annotation) in (list, tuple, set):
                raise TypeError(f"{model.__name__}.{name}: a repeated parameter is not planned")
        keys = tuple(field.alias or name for name, field in model.model_fields.items())
        environ_keys = tuple(_environ_key(key) for key in keys) if header else ()
        return cls(model, keys, model.model_config.get("extra") == "forbid", environ_keys)

    def read(self, source: Any) -> BaseModel:
        if self.everything:
            return self.model.model_validate(dict(source.items()))
        found = {}
        for key in self.keys:
            if key in source:  # `get` of a key it lacks raises and catches inside werkzeug
                found[key] = source[key]
        return self.model.model_validate(found)

    def read_environ(self, environ: dict[str, Any]) -> BaseModel:
        """A header model's fields straight from the WSGI environ (what request.headers
        reads, without building its view of every header)."""
        if self.everything:
            return self.read(request.headers)
        found = {}
        for key, environ_key in zip(self.keys, self.environ_keys, strict=True):
            value = environ.get(environ_key)
            if value is not None:
                found[key] = value
        return self.model.model_validate(found)


def _environ_key(header: str) -> str:
    name = header.upper().replace("-", "_")
    return name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"


#: the arguments of a request without a query string
_NO_ARGS: dict[str, str] = {}


class Plan:
    """What one route's view validates, worked out once from its type hints."""

    def __init__(self, func: Callable[..., Any]) -> None:
        hints = typing.get_type_hints(func)
        self.header = _Fields.of(hints["header"], header=True) if "header" in hints else None
        self.path: type[BaseModel] | None = hints.get("path")
        self.query = _Fields.of(hints["query"]) if "query" in hints else None
        self.body: type[BaseModel] | None = hints.get("body")

    @staticmethod
    def applies(func: Callable[..., Any]) -> bool:
        names = set(getattr(func, "__annotations__", {}))
        return bool(names & set(PARTS)) and not names & UNPLANNED

    def kwargs(self, path_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The view's arguments, read from Flask's request."""
        environ = request.environ
        return self.read(environ, path_kwargs,
                         lambda: request.args if environ.get("QUERY_STRING") else _NO_ARGS,
                         request.get_json)

    def read(self, environ: dict[str, Any], path_kwargs: dict[str, Any],
             args: Callable[[], Any], body: Callable[[], Any]) -> dict[str, Any]:
        """The view's arguments from the environ (headers), the route's path values, and the
        query's arguments and the body's JSON as read when asked (`args`, `body`): for
        Flask's view (`kwargs`) and the trigger's fast path (web/fast.py)."""
        out: dict[str, Any] = {}
        try:
            if self.header is not None:
                out["header"] = self.header.read_environ(environ)
            if self.path is not None:
                out["path"] = self.path.model_validate(path_kwargs)
            if self.query is not None:  # no query string: nothing to parse
                out["query"] = self.query.read(args())
            if self.body is not None:
                out["body"] = self.body.model_validate(body())
        except ValidationError as exc:
            raise invalid_request(exc) from None
        return out


def planned(func: Callable[..., Any]) -> Callable[..., Any]:
    """The view of a route function whose request models are validated by a Plan."""
    plan = Plan(func)

    def view(**path_kwargs: Any) -> Any:
        return func(**plan.kwargs(path_kwargs))

    view.__name__ = func.__name__
    view.__doc__ = func.__doc__
    view.__wrapped__ = func  # type: ignore[attr-defined]
    view.plan = plan  # type: ignore[attr-defined]
    return view


def plan_of(view: Callable[..., Any]) -> Plan | None:
    """The Plan of a planned view (None: flask-openapi3's, or not a route's)."""
    found = getattr(view, "plan", None)
    return found if isinstance(found, Plan) else None


def install(app: Flask) -> list[str]:
    """Replace the views flask-openapi3 made for the registered routes by planned ones (call
    it after every `register_api`); the endpoints replaced."""
    replaced = []
    for endpoint, view in list(app.view_functions.items()):
        func = getattr(view, "__wrapped__", None)
        if func is None or getattr(func, "view", None) is not view:  # not flask-openapi3's
            continue
        if Plan.applies(func):
            app.view_functions[endpoint] = planned(func)
            replaced.append(endpoint)
    return replaced
