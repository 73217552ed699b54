"""Request and response models, in one place: routes never build JSON ad hoc, and the OpenAPI
document (/openapi.json) is generated from these same classes (flask-openapi3 validates the
path, query, headers and body with them before a route runs).
Over 300 lines because it is that one place: every route's request and every answer it can
give, with the body's JSON reading the request models rely on.

Response models allow fields they do not name (`extra="allow"`), so an answer can grow a field
(e.g. `workers_online`) without breaking the contract. Request models forbid unknown body
fields: a typo must not be silently ignored.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable
from functools import reduce
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    create_model,
    field_validator,
)

from worker.client.service import WorkflowState
from worker.core.errors import InvalidRequest
from worker.core.keys import WORKFLOW_ID_PATTERN
from worker.core.runs import RUN_FIELDS, SUMMARY_FIELDS, Run, RunField
from worker.core.status import ConflictPolicy, RunStatus

MAX_BODY_BYTES = 64 * 1024
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
DEFAULT_LOG_PAGE = 200
MAX_LOG_PAGE = 1000
JsonObject = dict[str, Any]


# -- the body's JSON ----------------------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    """NaN and Infinity are not JSON: Python accepts them, and would echo invalid JSON back."""
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(body: bytes) -> JsonObject:
    """A request body as a JSON object: empty means `{}`; malformed, NaN/Infinity, nested too
    deeply or not an object is an `InvalidRequest` (the content type was checked before:
    web/bodies.py)."""
    if not body.strip():
        return {}
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply") from None
    if not isinstance(payload, dict):
        raise InvalidRequest("request body must be a JSON object")
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
    "offset": "offset must be an integer from 0",
    "Idempotency-Key": "Idempotency-Key must be 1 to 255 printable characters",
    "input": "input must be a JSON object",
}


# -- requests -----------------------------------------------------------------------------------

class _Params(BaseModel):
    """A query or header model. flask-openapi3 asks such a model for its JSON schema on every
    request, only to read its fields' types; generating it cost ~1 ms per model per request
    (profiled: a third of a trigger). The no-argument schema is made once per model; the
    OpenAPI document asks with arguments and still gets a fresh one."""

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
    """`{"input": {...}}`; the body, and `input`, may be omitted (an empty object)."""

    model_config = ConfigDict(extra="forbid")
    input: JsonObject | None = Field(
        None, description="the run's input, handed to the workflow (at most "
        "TEST_RUN_MAX_INPUT_BYTES as compact JSON)")

    @property
    def input_object(self) -> JsonObject:
        return self.input if self.input is not None else {}


class TriggerQuery(_Params):
    on_conflict: ConflictPolicy = Field(
        ConflictPolicy.REJECT, description="reject: 409 while a run is in progress; replace: "
        "cancel it and start this one, atomically")


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
    offset: int = Field(0, ge=0, description="the first line to return (0: the oldest kept)")
    limit: int = Field(DEFAULT_LOG_PAGE, ge=1, le=MAX_LOG_PAGE, description="lines at most")


class EventsHeaders(_Params):
    last_event_id: str | None = Field(
        None, alias="Last-Event-ID", max_length=64,
        description="resume after this event (the `id:` of the last event received)")


# -- responses ----------------------------------------------------------------------------------

class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


Timestamp = Annotated[str | None, Field(description="ISO-8601 UTC, or null",
                                        json_schema_extra={"format": "date-time"})]


class _RunModel(_Out):
    """A run's answer model: its fields come from worker/core/runs.py RUN_FIELDS (below)."""

    @classmethod
    def of(cls, run: Run) -> dict[str, Any]:
        data = run.to_dict()
        return cls.model_validate({k: data[k] for k in cls.model_fields}).model_dump(
            mode="json")


def _run_model(name: str, doc: str, fields: Iterable[RunField]) -> type[_RunModel]:
    """A response model of these run fields, each typed as RUN_FIELDS declares it."""
    spec: dict[str, Any] = {
        f.name: (Timestamp if f.timestamp else f.type,
                 Field(description=f.description) if f.description else ...)
        for f in fields}
    return create_model(name, __base__=_RunModel, __doc__=doc, **spec)


#: the active run's fields that GET /api/workflows/<id> shows, in this order
ACTIVE_RUN_FIELDS = ("run_id", "status", "created_at", "started_at", "last_heartbeat_at",
                     "worker")

if TYPE_CHECKING:  # built from RUN_FIELDS at import; to the type checker, run models
    class RunOut(_RunModel): ...
    class RunSummaryOut(_RunModel): ...
    class ActiveRun(_RunModel): ...
else:
    RunOut = _run_model("RunOut", "A test run (worker/core/runs.py `Run.to_dict`).",
                        RUN_FIELDS)
    RunSummaryOut = _run_model(
        "RunSummaryOut", "A test run without its input, result and logs (the runs list's "
        "default).", SUMMARY_FIELDS)
    ActiveRun = _run_model("ActiveRun", "The run holding a workflow's slot.",
                           [next(f for f in RUN_FIELDS if f.name == name)
                            for name in ACTIVE_RUN_FIELDS])


class LogPageOut(_Out):
    """A page of a run's log lines."""

    run_id: str
    offset: int
    total: int = Field(description="lines the log holds (older ones beyond "
                       "TEST_RUN_MAX_LOG_LINES were dropped)")
    lines: list[str]
    next_offset: int | None = Field(description="the next page's offset, or null at the end")


class TriggeredRun(RunOut):
    """The run a trigger admitted (202) or found under its Idempotency-Key (200). With
    `workers_online` 0 it waits in the queue: it starts if a worker comes within the queue
    timeout, else it ends `expired`."""

    model_config = ConfigDict(extra="allow", openapi_extra={"headers": {  # type: ignore[typeddict-unknown-key]
        "Location": {"description": "the run's URL", "required": True,
                     "schema": {"type": "string"}}}})

    workers_online: int | None = Field(
        None, description="workers consuming the test-run queue (advertised in Redis, read "
        "at most a second ago); null when it could not be read")


class CancelledRun(RunOut):
    """The run, now cancelled; its slot is already free."""


class WorkflowOut(_Out):
    id: str
    description: str
    active_run_id: str | None = Field(description="the run holding the workflow's slot")
    active_run: ActiveRun | None = Field(None, description="only when one workflow is read")

    @classmethod
    def of(cls, state: WorkflowState) -> dict[str, Any]:
        out: dict[str, Any] = {"id": state.workflow.id,
                               "description": state.workflow.description,
                               "active_run_id": state.active_run_id}
        if state.active_run is not None:
            out["active_run"] = ActiveRun.of(state.active_run)
        return cls.model_validate(out).model_dump(mode="json", exclude_unset=True)


class WorkflowList(_Out):
    workflows: list[WorkflowOut]
    workers_online: int | None = Field(
        None, description="workers consuming the test-run queue (advertised in Redis, read "
        "at most a second ago); null when it could not be read")


class RunList(_Out):
    runs: list[RunSummaryOut] = Field(description="summaries; whole runs with ?fields=full")


class Health(_Out):
    status: Literal["ok"]


class Readiness(_Out):
    status: Literal["ready"]
    checks: dict[str, str]
    workers_online: int | None = Field(
        None, description="workers consuming the test-run queue (advertised in Redis, read "
        "at most a second ago); null when it could not be read")


# -- errors: one model per code of the error tree (worker/core/errors.py) -----------------------

class ErrorBody(_Out):
    code: ClassVar[str]
    error: str = Field(description="the stable error code")
    message: str


class InvalidRequestBody(ErrorBody):
    error: Literal["invalid_request"]
    field: str | None = Field(None, description="the path, query, header or body field")
    fields: list[str] | None = Field(None, description="unknown body fields")


class HostNotAllowedBody(ErrorBody):
    error: Literal["host_not_allowed"]


class UnauthorizedBody(ErrorBody):
    error: Literal["unauthorized"]


class PayloadTooLargeBody(ErrorBody):
    error: Literal["payload_too_large"]
    field: str | None = Field(None, description="`input` when the input alone is too large")


class UnsupportedMediaTypeBody(ErrorBody):
    error: Literal["unsupported_media_type"]


class CrossSiteRequestBody(ErrorBody):
    error: Literal["cross_site_request"]


class NotFoundBody(ErrorBody):
    error: Literal["not_found"]


class MethodNotAllowedBody(ErrorBody):
    error: Literal["method_not_allowed"]


class InternalErrorBody(ErrorBody):
    error: Literal["internal_error"]


class WorkflowNotFoundBody(ErrorBody):
    error: Literal["workflow_not_found"]
    workflow_id: str


class RunNotFoundBody(ErrorBody):
    error: Literal["test_run_not_found"]
    run_id: str


class RunInProgressBody(ErrorBody):
    error: Literal["test_run_in_progress"]
    run_id: str = Field(description="the run in progress")
    status_url: str = Field(description="its URL")


class RunFinishedBody(ErrorBody):
    error: Literal["test_run_finished"]
    run_id: str
    status: RunStatus


class IdempotencyKeyReusedBody(ErrorBody):
    error: Literal["idempotency_key_reused"]
    run_id: str = Field(description="the run the key admitted, with another body")
    status_url: str = Field(description="its URL")


class RateLimitedBody(ErrorBody):
    error: Literal["rate_limited"]
    retry_after: int = Field(description="seconds, as in the Retry-After header")


class QueueUnavailableBody(ErrorBody):
    error: Literal["queue_unavailable"]
    what: Literal["redis", "broker"]


class TooManyStreamsBody(ErrorBody):
    error: Literal["too_many_streams"]
    retry_after: int = Field(description="seconds, as in the Retry-After header")


class NotReadyBody(ErrorBody):
    error: Literal["not_ready"]
    checks: dict[str, str]
    workers_online: int | None = Field(None, description="null when Redis cannot be read")


def one_of(*models: type[ErrorBody]) -> type[BaseModel]:
    """The answer of one status that may carry any of several error codes (told apart by
    `error`)."""
    if len(models) == 1:
        return models[0]
    union: Any = Annotated[reduce(operator.or_, models), Field(discriminator="error")]
    name = "Or".join(m.__name__.removesuffix("Body") for m in models) + "Error"
    return type(name, (RootModel[union],), {"__doc__": "one of: " + ", ".join(
        code_of(m) for m in models)})


def code_of(model: type[ErrorBody]) -> str:
    return model.model_fields["error"].annotation.__args__[0]  # type: ignore[union-attr]


#: error code → the model of its body
ERROR_MODELS: dict[str, type[ErrorBody]] = {code_of(m): m for m in ErrorBody.__subclasses__()}
