"""How a run ended, as the record says it: from the exception Celery reports (if any) to
status, error type, human error text and the reason its slot was freed."""

from __future__ import annotations

from dataclasses import dataclass

from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError

from ..core.bounds import MAX_ERROR_CHARS
from ..core.errors import RunFailure
from ..core.settings import Settings
from ..core.status import ErrorType, ReleaseReason, RunStatus


@dataclass(frozen=True)
class Outcome:
    status: RunStatus
    error_type: ErrorType
    error: str
    reason: ReleaseReason


def classify(exc: BaseException | None, settings: Settings) -> Outcome:
    """The outcome of a run that raised `exc` (None: it failed without an exception)."""
    outcome = _classify(exc, settings)
    if len(outcome.error) > MAX_ERROR_CHARS:
        cut = outcome.error[:MAX_ERROR_CHARS]
        outcome = Outcome(outcome.status, outcome.error_type,
                          f"{cut}… [{len(outcome.error) - MAX_ERROR_CHARS} more characters cut]",
                          outcome.reason)
    return outcome


def _classify(exc: BaseException | None, settings: Settings) -> Outcome:
    if isinstance(exc, SoftTimeLimitExceeded):
        return Outcome(RunStatus.TIMED_OUT, ErrorType.TIMEOUT,
                       f"exceeded the soft time limit of {settings.soft_time_limit:g}s",
                       ReleaseReason.TIMED_OUT)
    if isinstance(exc, TimeLimitExceeded):
        return Outcome(RunStatus.TIMED_OUT, ErrorType.TIMEOUT,
                       f"killed at the hard time limit of {settings.time_limit:g}s",
                       ReleaseReason.TIMED_OUT)
    if isinstance(exc, WorkerLostError):
        return Outcome(RunStatus.FAILED, ErrorType.WORKER_LOST,
                       f"the process running it died: {exc}", ReleaseReason.WORKER_LOST)
    if isinstance(exc, RunFailure):
        return Outcome(RunStatus.FAILED, exc.error_type, str(exc), ReleaseReason.FAILED)
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "the run raised no exception"
    return Outcome(RunStatus.FAILED, ErrorType.ERROR, text, ReleaseReason.FAILED)
