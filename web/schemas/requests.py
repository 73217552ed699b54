"""Request models: flask-openapi3 validates the path, query, headers and body with them before
a route runs, and the OpenAPI document's parameters are generated from them. Request models
forbid unknown body fields: a typo must not be silently ignored. The body's JSON is read here
too (`parse_json_body`), and a validation failure becomes the API's 400 (`invalid_request`).
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from worker.core.jsonshape import NotFinite, finite_float, nesting_exceeds
from worker.core.keys import WORKFLOW_ID_PATTERN
from worker.core.status import ConflictPolicy

from ..problems import InvalidRequest

MAX_BODY_BYTES = 64 * 1024
#: the app's config key for TEST_RUN_MAX_INPUT_DEPTH, read by every body's parse
MAX_DEPTH = "TESTRUNS_MAX_INPUT_DEPTH"
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
DEFAULT_LOG_PAGE = 200
MAX_LOG_PAGE = 1000
#: the highest log offset asked for: far beyond any run's log (TEST_RUN_MAX_LOG_LINES), and far
#: below Redis' own range, which answered a larger one with an error, not with no lines
MAX_LOG_OFFSET = 1_000_000
JsonObject = dict[str, Any]


# -- the body's JSON ----------------------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON: Python accepts them, and would echo invalid JSON back."""
    raise NotFinite(f"{name} is not valid JSON (numbers must be finite)")


#: a JSON escape of a UTF-16 surrogate: only then can a string hold a lone one
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89abcdefABCDEF]")


_TOO_DEEP = object()
#: made once: json.loads with these arguments would build a decoder for every body
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=finite_float)


def parse_json_body(body: bytes, max_depth: int) -> JsonObject:
    """A request body as a JSON object: empty means `{}`. Malformed (or not UTF-8), a number that
    is not finite (NaN, Infinity, 1e999), a string with a lone surrogate (it cannot be stored
    as UTF-8), an `input` nested deeper than `max_depth` (worker/core/jsonshape.py) or a body
    that is not an object is an `InvalidRequest` (the content type was checked before:
    web/bodies.py)."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid JSON: it is not UTF-8") from None
    if not text.strip():
        return {}
    try:
        payload = _DECODER.decode(text)
    except NotFinite as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        payload = _TOO_DEEP  # deeper than Python's parser goes: far past any limit
    if payload is _TOO_DEEP or nesting_exceeds(payload, max_depth + 1):  # + the body object
        raise InvalidRequest(f"input is nested deeper than {max_depth} levels "
                             "(TEST_RUN_MAX_INPUT_DEPTH)")
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(payload, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise InvalidRequest("request body is not valid JSON: a string holds a lone "
                                 "UTF-16 surrogate") from None
    return payload


def invalid_request(exc: ValidationError) -> InvalidRequest:
    """A model's validation error as the API's 400, naming the field that is wrong."""
    errors = exc.errors(include_url=False)
    unknown = sorted(str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden")
    if unknown:
        return InvalidRequest(f"unknown field(s): {', '.join(unknown)}", fields=unknown)
    first = errors[0]
    field = str(first["loc"][0]) if first["loc"] else None
    hint = FIELD_HINTS.get(field or "")
    message = hint or (f"{field}: {first['msg']}" if field else first["msg"])
    return InvalidRequest(message, field=field) if field else InvalidRequest(message)


_CHOICES = " or ".join(repr(p.value) for p in ConflictPolicy)
#: the messages a person reads for the fields whose rules are not obvious from pydantic's text
FIELD_HINTS = {
    "workflow_id": f"workflow id must match {WORKFLOW_ID_PATTERN}",
    "on_conflict": f"on_conflict must be {_CHOICES}",
    "limit": f"limit must be an integer from 1 to {MAX_LIST_LIMIT} (a log page: to "
             f"{MAX_LOG_PAGE})",
    "fields": "fields must be 'summary' or 'full'",
    "offset": f"offset must be an integer from 0 to {MAX_LOG_OFFSET}",
    "Idempotency-Key": "Idempotency-Key must be 1 to 255 printable characters",
    "input": "input must be a JSON object",
    "wait": "wait must be a number of seconds above 0, at most TEST_RUN_MAX_WAIT",
    "callback_url": "callback_url must be a URL of at most 2048 characters",
}


# -- the models ---------------------------------------------------------------------------------

class _Params(BaseModel):
    """A query or header model. flask-openapi3's own request validation asked such a model for
    its JSON schema on every request (~1 ms each, profiled: a third of a trigger); requests are
    now validated by web/validation.py, which never asks, but a route left to the library's
    view still would. The no-argument schema is made once per model; the OpenAPI document
    asks with arguments and still gets a fresh one."""

    _schema: ClassVar[dict[type, dict[str, Any]]] = {}

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if args or kwargs:
            return super().model_json_schema(*args, **kwargs)
        found = _Params._schema.get(cls)
        if found is None:
            found = _Params._schema[cls] = super().model_json_schema()
        return found


class WorkflowPath(BaseModel):
    workflow_id: str = Field(pattern=WORKFLOW_ID_PATTERN, description="a workflow id")


class RunPath(BaseModel):
    run_id: str = Field(description="`<workflow_id>-<32 hex>`; anything else is a 404")


class TriggerBody(BaseModel):
    """`{"input": {...}, "callback_url": "https://…"}`; the body, and each field, may be
    omitted (an empty input)."""

    model_config = ConfigDict(extra="forbid")
    input: JsonObject | None = Field(
        None, description="the run's input, handed to the workflow (at most "
        "TEST_RUN_MAX_INPUT_BYTES as compact JSON); it must fit the workflow's input_schema "
        "(422 invalid_input)")
    callback_url: str | None = Field(
        None, max_length=2048, description="where to POST this run's ending, signed per "
        "Standard Webhooks: https, a public address (or a host in WEBHOOK_ALLOWED_HOSTS); "
        "else 422 invalid_callback_url")

    @property
    def input_object(self) -> JsonObject:
        return self.input if self.input is not None else {}


def _max_wait() -> float:
    """TEST_RUN_MAX_WAIT of the app serving the request (the models are shared by every app)."""
    return float(current_app.extensions["testruns"].settings.max_wait)


class WaitQuery(_Params):
    wait: float | None = Field(
        None, gt=0, allow_inf_nan=False, description="wait up to this many seconds (at most "
        "TEST_RUN_MAX_WAIT) for the run to end; answered as soon as it does")

    @field_validator("wait")
    @classmethod
    def _at_most_max_wait(cls, value: float | None) -> float | None:
        if value is not None and value > _max_wait():
            raise ValueError(f"must be at most {_max_wait():g} (TEST_RUN_MAX_WAIT)")
        return value


class TriggerQuery(WaitQuery):
    on_conflict: ConflictPolicy = Field(
        ConflictPolicy.REJECT, description="what to do while a run is in progress: reject: "
        "409 (with Retry-After); queue: become the workflow's one pending run (202, "
        "`pending`), superseding an older one, run as soon as the slot is free; join: the run "
        "in progress (or pending) with the same input and workflow version (200, `joined`), "
        "else as reject; replace: cancel it and run this one once its body has stopped")


class TriggerHeaders(_Params):
    idempotency_key: str | None = Field(
        None, alias="Idempotency-Key", min_length=1, max_length=255,
        description="a repeat with the same key and body answers 200 with the same "
        "run; the same key with another body is 422 idempotency_key_reused")

    @field_validator("idempotency_key")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and not value.isprintable():
            raise ValueError("must be printable")
        return value


class ListQuery(_Params):
    limit: int = Field(DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT,
                       description="how many runs, newest first")
    fields: Literal["summary", "full"] = Field(
        "summary", description="summary: each run without input, result and logs; full: "
        "each run whole")


class LogsQuery(BaseModel):
    offset: int = Field(0, ge=0, le=MAX_LOG_OFFSET,
                        description="the first line to return (0: the oldest kept)")
    limit: int = Field(DEFAULT_LOG_PAGE, ge=1, le=MAX_LOG_PAGE, description="lines at most")


class EventsHeaders(_Params):
    last_event_id: str | None = Field(
        None, alias="Last-Event-ID", max_length=64,
        description="resume after this event (the `id:` of the last event received)")
