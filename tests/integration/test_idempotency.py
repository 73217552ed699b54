"""An Idempotency-Key is bound to its request's body: the same key with the same body (in any
key order or spacing) answers 200 with the earlier run; with another body, 422
`idempotency_key_reused`, and nothing is taken."""

from __future__ import annotations

import pytest

from tests.support.api import active_run_id, expect_status
from web import create_app
from worker.core.status import ErrorType, RunStatus

pytestmark = pytest.mark.cluster_tracking

TRIGGER = "/api/workflows/echo/test-runs"


def test_same_key_other_body_is_422_and_same_body_is_the_earlier_run(idle_client):
    key = {"Idempotency-Key": "bound-1"}
    run = expect_status(idle_client.post(TRIGGER, json={"input": {"a": 1, "b": [1, 2]}},
                                         headers=key), 202)
    same = idle_client.post(TRIGGER, data=b'{ "input" : {"b": [1,2], "a": 1} }',
                            content_type="application/json", headers=key)
    assert expect_status(same, 200)["run_id"] == run["run_id"]
    for other in ({"input": {"a": 2, "b": [1, 2]}}, {"input": {}}, None):
        body = expect_status(idle_client.post(TRIGGER, json=other, headers=key), 422)
        assert body["error"] == "idempotency_key_reused"
        assert body["run_id"] == run["run_id"]
        assert body["status_url"] == f"/api/test-runs/{run['run_id']}"
    # nothing was taken or replaced: the first run still holds the slot, alone in the list
    assert active_run_id(idle_client, "echo") == run["run_id"]
    runs = idle_client.get(TRIGGER).get_json()["runs"]
    assert [r["run_id"] for r in runs] == [run["run_id"]]
    # an empty body and an empty input are the same body
    empty = expect_status(idle_client.post(TRIGGER, headers={"Idempotency-Key": "bound-2"},
                                           query_string={"on_conflict": "replace"}), 202)
    again = idle_client.post(TRIGGER, json={"input": {}}, headers={"Idempotency-Key": "bound-2"})
    assert expect_status(again, 200)["run_id"] == empty["run_id"]


def test_a_retry_after_a_503_starts_the_run_only_with_the_same_body(config):
    """The first request took the slot, could not enqueue (503) and ended `enqueue_failed`:
    the same key with the same body starts the run; with another body it is still 422."""
    key = {"Idempotency-Key": "after-503"}
    down = create_app(dict(config, CELERY_BROKER_URL="nosuchtransport://x")).test_client()
    expect_status(down.post(TRIGGER, json={"input": {"a": 1}}, headers=key), 503)
    client = create_app(config).test_client()
    other = expect_status(client.post(TRIGGER, json={"input": {"a": 2}}, headers=key), 422)
    failed = client.get(other["status_url"]).get_json()
    assert failed["status"] == RunStatus.FAILED
    assert failed["error_type"] == ErrorType.ENQUEUE_FAILED
    assert active_run_id(client, "echo") is None  # the 422 took nothing
    retried = expect_status(client.post(TRIGGER, json={"input": {"a": 1}}, headers=key), 202)
    assert retried["run_id"] != other["run_id"] and retried["input"] == {"a": 1}
    assert active_run_id(client, "echo") == retried["run_id"]
