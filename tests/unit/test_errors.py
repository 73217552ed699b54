"""The error tree: every error the API can return, its stable code and HTTP status, in one
table (docs/api.md's bad-input table rests on it)."""

from __future__ import annotations

from worker.core.errors import (
    CrossSiteRequest,
    Dependency,
    HostNotAllowed,
    IdempotencyKeyReused,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NoSuchRoute,
    PayloadTooLarge,
    QueueUnavailable,
    RateLimited,
    RunFinished,
    RunInProgress,
    RunNotFound,
    TestRunError,
    TooManyStreams,
    Unauthorized,
    UnsupportedMediaType,
    WorkflowNotFound,
)
from worker.core.runs import Run
from worker.core.status import RunStatus

TABLE = {
    InvalidRequest: ("invalid_request", 400),
    HostNotAllowed: ("host_not_allowed", 400),
    Unauthorized: ("unauthorized", 401),
    PayloadTooLarge: ("payload_too_large", 413),
    WorkflowNotFound: ("workflow_not_found", 404),
    RunNotFound: ("test_run_not_found", 404),
    RunInProgress: ("test_run_in_progress", 409),
    RunFinished: ("test_run_finished", 409),
    QueueUnavailable: ("queue_unavailable", 503),
    NoSuchRoute: ("not_found", 404),
    MethodNotAllowed: ("method_not_allowed", 405),
    InternalError: ("internal_error", 500),
    RateLimited: ("rate_limited", 429),
    TooManyStreams: ("too_many_streams", 503),
    UnsupportedMediaType: ("unsupported_media_type", 415),
    IdempotencyKeyReused: ("idempotency_key_reused", 422),
    CrossSiteRequest: ("cross_site_request", 403),
}


def test_every_error_has_its_code_and_status():
    assert set(TestRunError.__subclasses__()) == set(TABLE)
    for cls, (code, status) in TABLE.items():
        assert (cls.code, cls.http_status) == (code, status), cls


def test_errors_carry_their_data_into_the_body():
    run = Run(run_id="e-" + "0" * 32, workflow_id="e", status=RunStatus.CANCELLED)
    assert RunFinished(run).body() == {
        "error": "test_run_finished",
        "message": f"test run {run.run_id} already ended: {RunStatus.CANCELLED}",
        "run_id": run.run_id, "status": RunStatus.CANCELLED}
    busy = RunInProgress("e", run.run_id)
    assert busy.body()["run_id"] == run.run_id and busy.links_run
    down = QueueUnavailable(Dependency.BROKER, ConnectionRefusedError("refused"))
    assert down.body()["what"] == "broker" and down.http_status == 503
    assert InvalidRequest("bad", field="limit").body() == {
        "error": "invalid_request", "message": "bad", "field": "limit"}


def test_waits_are_told_in_a_retry_after_header():
    assert RateLimited("2/minute", 12.4).headers() == {"Retry-After": "12"}
    assert RateLimited("2/minute", 12.4).body()["retry_after"] == 12
    assert TooManyStreams(4, 5).headers() == {"Retry-After": "5"}
    assert InvalidRequest("bad").headers() == {}
