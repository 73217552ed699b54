"""Error bodies: one model per code of the error tree (worker/core/errors.py), each
`{"error": "<code>", "message": "…", …data}`, and `one_of` for a status that may carry several.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, RootModel

from worker.core.status import RunStatus

from .responses import _Out


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
