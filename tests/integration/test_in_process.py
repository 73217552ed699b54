"""Paths that need no time limits or signals, run on an in-process worker: the classic
`celery.contrib.pytest` fixtures (pytest-celery's own `celery_worker` needs Docker)."""

from __future__ import annotations

import pytest
from celery.contrib.pytest import celery_worker  # noqa: F401 - the classic fixture

from tests.support.api import active_run_id, trigger, wait_terminal
from tests.support.procs import Worker
from web import create_app
from worker.core.settings import Settings
from worker.core.status import ErrorType, RunStatus
from worker.runner.app import create_worker_app


@pytest.fixture
def small_results(config):
    return dict(config, TEST_RUN_MAX_RESULT_BYTES="2000")


@pytest.fixture
def flask_app(small_results):
    return create_app(small_results)


@pytest.fixture
def celery_app(small_results):
    """The worker's app (the web's publishes only: it has no task registered)."""
    return create_worker_app(Settings.from_env(overrides=small_results))


@pytest.fixture
def celery_worker_pool():
    return "threads"


@pytest.fixture
def celery_worker_parameters(config):
    # the ping check reads a result; runs ignore results (the run record is the truth), and
    # the tests poll the run with a deadline instead
    return {"queues": [config["TEST_RUN_QUEUE"]], "concurrency": 2,
            "perform_ping_check": False}


@pytest.mark.usefixtures("celery_worker")
def test_a_result_json_cannot_carry_fails_as_invalid_result(flask_app):
    client = flask_app.test_client()
    run = trigger(client, "not-json")
    done = wait_terminal(client, run["run_id"])
    assert done["status"] == RunStatus.FAILED
    assert done["error_type"] == ErrorType.INVALID_RESULT, done["error"]
    assert "not JSON" in done["error"]
    assert active_run_id(client, "not-json") is None


@pytest.mark.usefixtures("celery_worker")
def test_a_result_over_the_size_limit_fails_as_invalid_result(flask_app):
    client = flask_app.test_client()
    small = wait_terminal(client, trigger(client, "big", {"size": 1000})["run_id"])
    assert small["status"] == RunStatus.SUCCEEDED and len(small["result"]["blob"]) == 1000
    done = wait_terminal(client, trigger(client, "big", {"size": 5000})["run_id"])
    assert done["status"] == RunStatus.FAILED
    assert done["error_type"] == ErrorType.INVALID_RESULT
    assert "over TEST_RUN_MAX_RESULT_BYTES (2000)" in done["error"]
    assert done["result"] is None  # not stored
    assert active_run_id(client, "big") is None


@pytest.mark.usefixtures("celery_worker")
def test_echo_on_an_in_process_worker(flask_app):
    client = flask_app.test_client()
    done = wait_terminal(client, trigger(client, "echo", {"x": [1]})["run_id"])
    assert done["status"] == RunStatus.SUCCEEDED and done["result"] == {"x": [1]}


def test_a_workflow_the_worker_does_not_know_fails_as_workflow_not_found(config):
    """The web knows the test workflows; this worker was started without them."""
    client = create_app(config).test_client()
    worker = Worker(dict(config, WORKFLOW_MODULES="worker.workflows.examples")).wait_ready()
    try:
        done = wait_terminal(client, trigger(client, "probe")["run_id"])
        assert done["status"] == RunStatus.FAILED
        assert done["error_type"] == ErrorType.WORKFLOW_NOT_FOUND
        assert active_run_id(client, "probe") is None
    finally:
        worker.kill_group()
