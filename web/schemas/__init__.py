"""Request, response and error models, in three modules: routes never build JSON ad hoc, and
the OpenAPI document (/openapi.json) is generated from these same classes (flask-openapi3
validates the path, query, headers and body with them before a route runs).

- `requests.py`: path, query, header and body models, and the body's JSON reading;
- `responses.py`: what a route answers when it succeeds;
- `errors.py`: one body model per error code.

Routes read them all from here (`from . import schemas as s; s.RunOut`).
"""

from __future__ import annotations

from .errors import (
    ERROR_MODELS,
    AppUnavailableBody,
    CrossSiteRequestBody,
    ErrorBody,
    ForbiddenBody,
    HeadersTooLargeBody,
    HostNotAllowedBody,
    HttpErrorBody,
    IdempotencyKeyReusedBody,
    InternalErrorBody,
    InvalidCallbackUrlBody,
    InvalidInputBody,
    InvalidRequestBody,
    MethodNotAllowedBody,
    NotFoundBody,
    NotReadyBody,
    PayloadTooLargeBody,
    QueueUnavailableBody,
    RateLimitedBody,
    RunFinishedBody,
    RunInProgressBody,
    RunNotFoundBody,
    TooManyClientStreamsBody,
    TooManyStreamsBody,
    UnauthorizedBody,
    UnsupportedMediaTypeBody,
    UriTooLongBody,
    WorkflowNotFoundBody,
    members,
    one_of,
)
from .requests import (
    DEFAULT_LIST_LIMIT,
    DEFAULT_LOG_PAGE,
    FIELD_HINTS,
    MAX_BODY_BYTES,
    MAX_DEPTH,
    MAX_LIST_LIMIT,
    MAX_LOG_OFFSET,
    MAX_LOG_PAGE,
    EventsHeaders,
    JsonObject,
    ListQuery,
    LogsQuery,
    RunPath,
    TriggerBody,
    TriggerHeaders,
    TriggerQuery,
    WaitQuery,
    WorkflowPath,
    invalid_request,
    parse_json_body,
)
from .responses import (
    ActiveRun,
    CancelledRun,
    Health,
    LogPageOut,
    Readiness,
    RunList,
    RunOut,
    RunSummaryOut,
    Timestamp,
    TriggeredRun,
    WorkflowList,
    WorkflowOut,
)

__all__ = [
    "ActiveRun", "AppUnavailableBody", "HeadersTooLargeBody", "UriTooLongBody", "CancelledRun",
    "CrossSiteRequestBody", "DEFAULT_LIST_LIMIT", "DEFAULT_LOG_PAGE",
    "ERROR_MODELS", "ErrorBody", "EventsHeaders", "ForbiddenBody", "FIELD_HINTS", "Health",
    "HostNotAllowedBody",
    "HttpErrorBody", "IdempotencyKeyReusedBody", "InternalErrorBody", "invalid_request",
    "InvalidCallbackUrlBody", "InvalidInputBody",
    "InvalidRequestBody", "JsonObject", "ListQuery", "LogPageOut", "LogsQuery", "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_LIST_LIMIT", "MAX_LOG_OFFSET", "MAX_LOG_PAGE", "MethodNotAllowedBody", "NotFoundBody",
    "NotReadyBody", "members", "one_of", "parse_json_body", "PayloadTooLargeBody",
    "QueueUnavailableBody", "RateLimitedBody",
    "Readiness", "RunFinishedBody", "RunInProgressBody", "RunList", "RunNotFoundBody", "RunOut",
    "RunPath", "RunSummaryOut", "Timestamp", "TooManyClientStreamsBody", "TooManyStreamsBody",
    "TriggerBody",
    "TriggeredRun", "TriggerHeaders", "TriggerQuery", "UnauthorizedBody",
    "UnsupportedMediaTypeBody", "WaitQuery", "WorkflowList", "WorkflowNotFoundBody", "WorkflowOut",
    "WorkflowPath"
]
