"""Error bodies: one model per error class (the service's, worker/core/errors.py, and the
web's own, web/problems.py), each `{"error": "<code>", "message": "…", …data}`, and `one_of`
for a status that may carry several. A model takes its code from its class
(`class RunInProgressBody(ErrorBody, error_class=RunInProgress)`): each code is written once,
on its error class.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, RootModel

from worker.core.errors import (
    Forbidden,
    IdempotencyKeyReused,
    InvalidCallbackUrl,
    InvalidInput,
    PayloadTooLarge,
    QueueUnavailable,
    RateLimited,
    RunFinished,
    RunInProgress,
    RunNotFound,
    TestRunError,
    WorkflowNotFound,
)
from worker.core.scopes import Scope
from worker.core.status import RunStatus

from ..problems import (
    AppUnavailable,
    CrossSiteRequest,
    HeadersTooLarge,
    HostNotAllowed,
    HttpError,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NoSuchRoute,
    NotReady,
    TooManyClientStreams,
    TooManyStreams,
    Unauthorized,
    UnsupportedMediaType,
    UriTooLong,
)
from .responses import _Out


class ErrorBody(_Out):
    """The body of one error class: `error` is its code (`Literal[code]`, a `const` in the
    OpenAPI document), set from `error_class` when the model is declared."""

    error_class: ClassVar[type[TestRunError]]
    error: str = Field(description="the stable error code")
    message: str

    def __init_subclass__(cls, error_class: type[TestRunError] | None = None,
                          **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if error_class is None:
            raise TypeError(f"{cls.__name__}: an error body names its error_class")
        cls.error_class = error_class
        # before pydantic collects the fields (its metaclass does so after type.__new__)
        cls.__annotations__["error"] = Literal[error_class.code]


class InvalidRequestBody(ErrorBody, error_class=InvalidRequest):
    field: str | None = Field(None, description="the path, query, header or body field")
    fields: list[str] | None = Field(None, description="unknown body fields")


class HostNotAllowedBody(ErrorBody, error_class=HostNotAllowed):
    pass


class UnauthorizedBody(ErrorBody, error_class=Unauthorized):
    pass


class PayloadTooLargeBody(ErrorBody, error_class=PayloadTooLarge):
    field: str | None = Field(None, description="`input` when the input alone is too large")


class UnsupportedMediaTypeBody(ErrorBody, error_class=UnsupportedMediaType):
    pass


class CrossSiteRequestBody(ErrorBody, error_class=CrossSiteRequest):
    pass


class NotFoundBody(ErrorBody, error_class=NoSuchRoute):
    pass


class MethodNotAllowedBody(ErrorBody, error_class=MethodNotAllowed):
    pass


class InternalErrorBody(ErrorBody, error_class=InternalError):
    pass


class WorkflowNotFoundBody(ErrorBody, error_class=WorkflowNotFound):
    workflow_id: str


class RunNotFoundBody(ErrorBody, error_class=RunNotFound):
    run_id: str


class RunInProgressBody(ErrorBody, error_class=RunInProgress):
    run_id: str = Field(description="the run in progress")
    status_url: str = Field(description="its URL")
    status: RunStatus | None = Field(None, description="its status (cancelled: its body is "
                                     "stopping; the slot passes once it has)")
    started_at: str | None = Field(None, description="when it started (null: not yet)")
    last_heartbeat_at: str | None = Field(None, description="its worker's last lease renewal")
    lease_expires_at: str | None = Field(None, description="when its lease lapses unless "
                                         "renewed")
    pending_run_id: str | None = Field(None, description="the run waiting to take the slot "
                                       "next (on_conflict=queue), if any")
    retry_after: int = Field(description="seconds to wait, as the Retry-After header: its "
                             "remaining hard time limit if it runs, its remaining queue "
                             "timeout if it waits for a worker; at least 1")


class RunFinishedBody(ErrorBody, error_class=RunFinished):
    run_id: str
    status: RunStatus


class IdempotencyKeyReusedBody(ErrorBody, error_class=IdempotencyKeyReused):
    run_id: str = Field(description="the run the key admitted, with another body")
    status_url: str = Field(description="its URL")


class ForbiddenBody(ErrorBody, error_class=Forbidden):
    scope: Scope = Field(description="the token scope the request needs")


class InputProblemOut(BaseModel):
    pointer: str = Field(description="a JSON Pointer into `input` (RFC 6901; '' is the whole "
                         "input)")
    message: str


class InvalidInputBody(ErrorBody, error_class=InvalidInput):
    errors: list[InputProblemOut] = Field(description="each way the input does not fit the "
                                          "workflow's input_schema")


class InvalidCallbackUrlBody(ErrorBody, error_class=InvalidCallbackUrl):
    field: Literal["callback_url"]


class RateLimitedBody(ErrorBody, error_class=RateLimited):
    retry_after: int = Field(description="seconds, as in the Retry-After header")


class QueueUnavailableBody(ErrorBody, error_class=QueueUnavailable):
    what: Literal["redis", "broker"]


class TooManyStreamsBody(ErrorBody, error_class=TooManyStreams):
    retry_after: int = Field(description="seconds, as in the Retry-After header")


class TooManyClientStreamsBody(ErrorBody, error_class=TooManyClientStreams):
    retry_after: int = Field(description="seconds, as in the Retry-After header")


class NotReadyBody(ErrorBody, error_class=NotReady):
    checks: dict[str, str]
    workers_online: int | None = Field(None, description="null when Redis cannot be read")


class UriTooLongBody(ErrorBody, error_class=UriTooLong):
    """The HTTP server's answer (nginx's or gunicorn's), before the app runs."""


class HeadersTooLargeBody(ErrorBody, error_class=HeadersTooLarge):
    """The HTTP server's answer (nginx's or gunicorn's), before the app runs."""


class AppUnavailableBody(ErrorBody, error_class=AppUnavailable):
    """The front's answer while the app behind it does not answer."""

    retry_after: int = Field(description="seconds, as in the Retry-After header")


class HttpErrorBody(ErrorBody, error_class=HttpError):
    """A werkzeug status we never produce on purpose, passed through: no route declares it."""


#: each union `one_of` made → the bodies it is made of
_UNIONS: dict[type[BaseModel], tuple[type[ErrorBody], ...]] = {}


def one_of(*models: type[ErrorBody]) -> type[BaseModel]:
    """The answer of one status that may carry any of several error codes (told apart by
    `error`)."""
    if len(models) == 1:
        return models[0]
    union: Any = Annotated[reduce(operator.or_, models), Field(discriminator="error")]
    name = "Or".join(m.__name__.removesuffix("Body") for m in models) + "Error"
    made = type(name, (RootModel[union],), {"__doc__": "one of: " + ", ".join(
        m.error_class.code for m in models)})
    _UNIONS[made] = models
    return made


def members(model: type[BaseModel]) -> tuple[type[ErrorBody], ...]:
    """The error bodies an answer's model stands for: a union's members, or the body itself."""
    found = _UNIONS.get(model)
    if found is not None:
        return found
    assert issubclass(model, ErrorBody), model
    return (model,)


#: error code → the model of its body
ERROR_MODELS: dict[str, type[ErrorBody]] = {
    m.error_class.code: m for m in ErrorBody.__subclasses__()}
