"""Every error the service raises, in three small trees:

- `TestRunError`: what a caller of the service (the HTTP API, the CLI) is told. Each class
  carries a stable `code` and the HTTP status it maps to; its keyword data goes into the JSON
  body. The web renders any of them with one handler (web/errors.py).
- `RunFailure`: how a run's body failed in a way the worker classifies itself; each carries
  the `error_type` recorded on the run (worker/runner/outcomes.py).
- `SettingsError`: a setting the service cannot run with.

"Redis or the broker is unreachable" becomes `QueueUnavailable` in exactly one place:
`unavailable_on_outage()` below.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, ClassVar

import redis

from .runs import Run
from .status import ErrorType

logger = logging.getLogger(__name__)


class TestRunError(Exception):
    """Base of what the service tells its callers; never raised itself."""

    __test__ = False  # not a pytest class
    code: ClassVar[str] = "invalid_request"
    http_status: ClassVar[int] = 400
    #: the body gains `status_url` (the run's read route) for `data["run_id"]`
    links_run: ClassVar[bool] = False

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.data}

    def headers(self) -> dict[str, str]:
        """HTTP headers the answer carries besides its body."""
        return {}


class InvalidRequest(TestRunError):
    code, http_status = "invalid_request", 400


class HostNotAllowed(TestRunError):
    """The Host header is not in TRUSTED_HOSTS (a DNS-rebinding page, or a wrong name)."""

    code, http_status = "host_not_allowed", 400


class Unauthorized(TestRunError):
    code, http_status = "unauthorized", 401


class PayloadTooLarge(TestRunError):
    code, http_status = "payload_too_large", 413


class UnsupportedMediaType(TestRunError):
    """A body not declared as JSON (`text/plain`, a form): what a browser posts cross-site
    without a preflight (web/bodies.py)."""

    code, http_status = "unsupported_media_type", 415


class CrossSiteRequest(TestRunError):
    """A browser says the request comes from another site (Sec-Fetch-Site) whose origin is not
    in CORS_ORIGINS: a page the user merely visited, posting with no body (web/bodies.py)."""

    code, http_status = "cross_site_request", 403


class NoSuchRoute(TestRunError):
    """No route matches the path."""

    code, http_status = "not_found", 404


class MethodNotAllowed(TestRunError):
    code, http_status = "method_not_allowed", 405


class InternalError(TestRunError):
    """A bug: the client is told nothing more; the server log has the traceback."""

    code, http_status = "internal_error", 500


class WorkflowNotFound(TestRunError):
    code, http_status = "workflow_not_found", 404

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow {workflow_id!r}", workflow_id=workflow_id)
        self.workflow_id = workflow_id


class RunNotFound(TestRunError):
    code, http_status = "test_run_not_found", 404

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no test run {run_id!r}", run_id=run_id)
        self.run_id = run_id


class RunInProgress(TestRunError):
    code, http_status = "test_run_in_progress", 409
    links_run = True

    def __init__(self, workflow_id: str, run_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} already has a test run in progress",
                         run_id=run_id)
        self.workflow_id = workflow_id
        self.run_id = run_id


class RunFinished(TestRunError):
    """The run already reached a terminal status, which never changes."""

    code, http_status = "test_run_finished", 409

    def __init__(self, run: Run) -> None:
        super().__init__(f"test run {run.run_id} already ended: {run.status.value}",
                         run_id=run.run_id, status=run.status.value)
        self.run = run


class IdempotencyKeyReused(TestRunError):
    """The Idempotency-Key already admitted a run with a different body: answering with that
    run would tell the caller its other input was accepted."""

    code, http_status = "idempotency_key_reused", 422
    links_run = True

    def __init__(self, run_id: str) -> None:
        super().__init__("this Idempotency-Key was used with a different request body",
                         run_id=run_id)
        self.run_id = run_id


class RateLimited(TestRunError):
    """The caller triggered more than TRIGGER_RATE_LIMIT allows; nothing was taken."""

    code, http_status = "rate_limited", 429

    def __init__(self, limit: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after))
        super().__init__(f"more than {limit} test runs triggered; try again in {seconds} s",
                         retry_after=seconds)
        self.retry_after = seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyStreams(TestRunError):
    """This web process already serves TEST_RUN_MAX_STREAMS event streams."""

    code, http_status = "too_many_streams", 503

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(f"this server already streams {limit} test runs' events; try again "
                         "shortly, or read the run instead", retry_after=retry_after)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class Dependency(StrEnum):
    """What could not be reached: the `what` of a 503."""

    REDIS = "redis"
    BROKER = "broker"


class QueueUnavailable(TestRunError):
    """Redis or the broker could not be reached (or refused the publish). The client is told
    which, in stable words; the cause (hosts, ports, driver text) stays in the server log."""

    code, http_status = "queue_unavailable", 503

    def __init__(self, what: Dependency, cause: BaseException) -> None:
        super().__init__(f"{what.value} is unreachable; try again shortly", what=what.value)
        self.what = what
        self.cause = cause


#: What "unreachable" means for a Redis call: any client error, or the socket's own.
REDIS_OUTAGES: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


@contextmanager
def unavailable_on_outage(what: Dependency = Dependency.REDIS) -> Iterator[None]:
    """The one mapping from an unreachable Redis to `QueueUnavailable` (a 503); anything else
    is a bug and stays what it is. The cause is logged here, once."""
    try:
        yield
    except REDIS_OUTAGES as exc:
        logger.warning("%s unreachable: %s: %s", what.value, type(exc).__name__, exc)
        raise QueueUnavailable(what, exc) from exc


class RunFailure(Exception):
    """A run failed for a reason the worker names itself (not the body's own exception)."""

    error_type: ClassVar[ErrorType] = ErrorType.ERROR

    def __reduce__(self) -> tuple[Any, ...]:
        # picklable as itself across the pool: Celery otherwise wraps it and the type is lost
        return type(self), self.args


class WorkflowUnavailable(RunFailure):
    """The worker has no workflow with this id (WORKFLOW_MODULES differ from the web's?)."""

    error_type = ErrorType.WORKFLOW_NOT_FOUND

    def __init__(self, workflow_id: str) -> None:
        super().__init__(workflow_id)
        self.workflow_id = workflow_id

    def __str__(self) -> str:
        return f"this worker has no workflow {self.workflow_id!r}"


class InvalidResult(RunFailure):
    error_type = ErrorType.INVALID_RESULT

    def __init__(self, workflow_id: str, detail: str) -> None:
        super().__init__(workflow_id, detail)
        self.workflow_id = workflow_id
        self.detail = detail

    def __str__(self) -> str:
        return f"workflow {self.workflow_id!r} returned a result it cannot keep: {self.detail}"


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable."""

    def __init__(self, variable: str, message: str) -> None:
        super().__init__(f"{variable}: {message}")
        self.variable = variable
