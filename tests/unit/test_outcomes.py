"""How a run's ending is recorded: exception → status, error type, error text, release reason."""

from __future__ import annotations

import pytest
from billiard.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError

from worker.core.errors import InvalidResult, WorkflowUnavailable
from worker.core.settings import Settings
from worker.core.status import ErrorType, ReleaseReason, RunStatus
from worker.runner.outcomes import classify

SETTINGS = Settings.from_env({"TEST_RUN_TIME_LIMIT": "30", "TEST_RUN_SOFT_TIME_LIMIT": "20"})


@pytest.mark.parametrize("exc, status, error_type, reason, text", [
    (SoftTimeLimitExceeded(), RunStatus.TIMED_OUT, ErrorType.TIMEOUT, ReleaseReason.TIMED_OUT,
     "soft time limit of 20s"),
    (TimeLimitExceeded(30), RunStatus.TIMED_OUT, ErrorType.TIMEOUT, ReleaseReason.TIMED_OUT,
     "hard time limit of 30s"),
    (WorkerLostError("signal 9"), RunStatus.FAILED, ErrorType.WORKER_LOST,
     ReleaseReason.WORKER_LOST, "the process running it died: signal 9"),
    (WorkflowUnavailable("gone"), RunStatus.FAILED, ErrorType.WORKFLOW_NOT_FOUND,
     ReleaseReason.FAILED, "this worker has no workflow 'gone'"),
    (InvalidResult("w", "not JSON: set"), RunStatus.FAILED, ErrorType.INVALID_RESULT,
     ReleaseReason.FAILED, "returned a result it cannot keep: not JSON: set"),
    (RuntimeError("kaput"), RunStatus.FAILED, ErrorType.ERROR, ReleaseReason.FAILED,
     "RuntimeError: kaput"),
    (None, RunStatus.FAILED, ErrorType.ERROR, ReleaseReason.FAILED, "no exception"),
])
def test_classify(exc, status, error_type, reason, text):
    outcome = classify(exc, SETTINGS)
    assert (outcome.status, outcome.error_type, outcome.reason) == (status, error_type, reason)
    assert text in outcome.error


@pytest.mark.parametrize("exc", [WorkflowUnavailable("w"), InvalidResult("w", "why")])
def test_run_failures_survive_the_pool_boundary_with_their_type(exc):
    """Celery pickles a child's exception to the main process; a wrapped one loses its type."""
    import pickle

    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is type(exc) and str(back) == str(exc)
    assert classify(back, SETTINGS).error_type == exc.error_type


def test_a_huge_error_text_is_cut():
    """A workflow's exception message can be any size; the record keeps a bounded one."""
    outcome = classify(RuntimeError("x" * 100_000), SETTINGS)
    assert len(outcome.error) < 4200 and outcome.error.endswith("more characters cut]")
    assert outcome.error.startswith("RuntimeError: xxx")
