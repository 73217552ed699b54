"""Every error class the API can answer with, and one instance of each: the service's
(worker/core/errors.py) and the web's own (web/problems.py)."""

from __future__ import annotations

import web.problems as problems
from worker.core import errors
from worker.core.runs import Run
from worker.core.status import RunStatus

RUN = Run(run_id="e-" + "0" * 32, workflow_id="e", status=RunStatus.CANCELLED)


def every_error() -> set[type[errors.TestRunError]]:
    """Every subclass of `TestRunError`, at any depth (web/problems.py imported)."""
    found: set[type[errors.TestRunError]] = set()
    todo = [errors.TestRunError]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return found


#: one of each, with the data its constructor gives it
SAMPLES: list[errors.TestRunError] = [
    problems.InvalidRequest("bad", field="limit"),
    problems.InvalidRequest("unknown field(s): a", fields=["a"]),
    problems.HostNotAllowed("no"),
    problems.Unauthorized("no"),
    problems.UnsupportedMediaType("no"),
    problems.CrossSiteRequest("no"),
    problems.NoSuchRoute("no"),
    problems.MethodNotAllowed("no"),
    problems.InternalError("internal server error"),
    problems.TooManyStreams(4, retry_after=5),
    problems.TooManyClientStreams(2, retry_after=5),
    problems.NotReady(["broker"], {"redis": "ok", "broker": "down"}, None),
    problems.HttpError(418, "I'm a teapot"),
    problems.UriTooLong("too long"),
    problems.HeadersTooLarge("too large"),
    problems.AppUnavailable("not answering", retry_after=1),
    errors.PayloadTooLarge("too big", field="input"),
    errors.WorkflowNotFound("e"),
    errors.RunNotFound(RUN.run_id),
    errors.RunInProgress("e", RUN.run_id),
    errors.RunFinished(RUN),
    errors.IdempotencyKeyReused(RUN.run_id),
    errors.InvalidInput("sleep", [{"pointer": "/seconds", "message": "not a number"}]),
    errors.InvalidCallbackUrl("its host is not in WEBHOOK_ALLOWED_HOSTS"),
    errors.RateLimited("2/minute", 12.4),
    errors.Forbidden("cancel", "cancelling a run another caller triggered"),
    errors.QueueUnavailable(errors.Dependency.BROKER, ConnectionRefusedError("refused")),
]
