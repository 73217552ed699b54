"""Every error the service raises, in three small trees:

- `TestRunError`: what a caller of the service (the HTTP API, the CLI) is told, in the
  service's own terms: each class carries a stable `code`, and its keyword data goes into the
  answer's body. Nothing here knows HTTP: the web maps each error to its status and headers
  (web/errors.py) and adds the errors only it raises (web/problems.py).
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
    """Base of what callers are told; never raised itself. `code` is the stable word a caller
    tells errors apart by; `data` is what the answer says besides the message."""

    __test__ = False  # not a pytest class
    code: ClassVar[str]

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.data}


class PayloadTooLarge(TestRunError):
    """The run's input is larger than TEST_RUN_MAX_INPUT_BYTES (the web also answers a request
    body beyond its own cap with it)."""

    code = "payload_too_large"


class WorkflowNotFound(TestRunError):
    code = "workflow_not_found"

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"no workflow {workflow_id!r}", workflow_id=workflow_id)
        self.workflow_id = workflow_id


class RunNotFound(TestRunError):
    code = "test_run_not_found"

    def __init__(self, run_id: str) -> None:
        super().__init__(f"no test run {run_id!r}", run_id=run_id)
        self.run_id = run_id


class RunInProgress(TestRunError):
    """The workflow's slot is held by another run (`run_id`)."""

    code = "test_run_in_progress"

    def __init__(self, workflow_id: str, run_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} already has a test run in progress",
                         run_id=run_id)
        self.workflow_id = workflow_id
        self.run_id = run_id


class RunFinished(TestRunError):
    """The run already reached a terminal status, which never changes."""

    code = "test_run_finished"

    def __init__(self, run: Run) -> None:
        super().__init__(f"test run {run.run_id} already ended: {run.status.value}",
                         run_id=run.run_id, status=run.status.value)
        self.run = run


class IdempotencyKeyReused(TestRunError):
    """The Idempotency-Key already admitted a run (`run_id`) with a different body: answering
    with that run would tell the caller its other input was accepted."""

    code = "idempotency_key_reused"

    def __init__(self, run_id: str) -> None:
        super().__init__("this Idempotency-Key was used with a different request body",
                         run_id=run_id)
        self.run_id = run_id


class Forbidden(TestRunError):
    """The caller's token lacks the scope (`scope`) this needs: a route's, a conflict policy's,
    or `cancel` for a run another caller triggered (worker/core/scopes.py)."""

    code = "forbidden"

    def __init__(self, scope: str, what: str) -> None:
        super().__init__(f"{what} needs the token scope {scope!r}", scope=scope)
        self.scope = scope


class InvalidInput(TestRunError):
    """The trigger's input does not fit the workflow's input schema (worker/workflows/
    inputs.py): checked before anything is taken, so no slot, record or rate-limit count.
    `errors` lists each problem as a JSON Pointer into the input and a message."""

    code = "invalid_input"

    def __init__(self, workflow_id: str, errors: list[dict[str, str]]) -> None:
        first = errors[0] if errors else {"pointer": "", "message": "does not fit"}
        where = first["pointer"] or "the input"
        super().__init__(f"input does not fit the input schema of {workflow_id!r}: {where}: "
                         f"{first['message']}", errors=errors)
        self.errors = errors


class InvalidCallbackUrl(TestRunError):
    """A trigger's `callback_url` may not be called: not https (http only for a listed host),
    a host outside WEBHOOK_ALLOWED_HOSTS, or a name that resolves to a loopback, link-local,
    private or metadata address not listed explicitly (worker/core/egress.py). Nothing taken."""

    code = "invalid_callback_url"

    def __init__(self, reason: str) -> None:
        super().__init__(f"callback_url refused: {reason}", field="callback_url")
        self.reason = reason


class RateLimited(TestRunError):
    """The caller triggered more than TRIGGER_RATE_LIMIT allows; nothing was taken. It may try
    again in `retry_after` whole seconds."""

    code = "rate_limited"

    def __init__(self, limit: str, retry_after: float) -> None:
        seconds = max(1, int(retry_after))
        super().__init__(f"more than {limit} test runs triggered; try again in {seconds} s",
                         retry_after=seconds)
        self.retry_after = seconds


class Dependency(StrEnum):
    """What could not be reached: the `what` of a `QueueUnavailable`."""

    REDIS = "redis"
    BROKER = "broker"


class QueueUnavailable(TestRunError):
    """Redis or the broker could not be reached (or refused the publish). The client is told
    which, in stable words; the cause (hosts, ports, driver text) stays in the server log."""

    code = "queue_unavailable"

    def __init__(self, what: Dependency, cause: BaseException) -> None:
        super().__init__(f"{what.value} is unreachable; try again shortly", what=what.value)
        self.what = what
        self.cause = cause


#: What "unreachable" means for a Redis call: the connection failed or timed out (the client's
#: errors or the socket's own; a sentinel with no master is a ConnectionError too), or the
#: server says it cannot serve now — a read-only replica during a failover, a cluster down or
#: migrating, a full memory. Any other error Redis answers (a `ResponseError`: a wrong argument,
#: a bad script) is a bug of ours, never an outage: it stays what it is, a logged 500.
#: On a Redis Cluster also: a slot moving between nodes that redis-py gave up on (TRYAGAIN or
#: ASK answered until its redirections ran out: `ClusterError`, "TTL exhausted"), a slot no
#: node serves (mid-failover) and a master down.
REDIS_OUTAGES: tuple[type[BaseException], ...] = (
    redis.ConnectionError, redis.TimeoutError, OSError, redis.exceptions.ReadOnlyError,
    redis.exceptions.ClusterError, redis.exceptions.TryAgainError,
    redis.exceptions.AskError, redis.exceptions.SlotNotCoveredError,
    redis.exceptions.MasterDownError, redis.exceptions.OutOfMemoryError)


@contextmanager
def unavailable_on_outage(what: Dependency = Dependency.REDIS) -> Iterator[None]:
    """The one mapping from an unreachable Redis to `QueueUnavailable`; anything else
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
