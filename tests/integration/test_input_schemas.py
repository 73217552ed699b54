"""A trigger's input is checked against its workflow's input schema before anything is taken:
422 `invalid_input` with a JSON Pointer per problem, and no slot, no record, no rate-limit
count. The schema is published on GET /api/workflows/<id>. No worker: nothing here runs."""

from __future__ import annotations

import pytest

from tests.support.api import delete_prefix, expect_status, keys_of, make_config, trigger
from web import create_app
from worker.core.status import RunStatus


def nothing_taken(client, redis_client, config, workflow_id: str) -> None:
    k = keys_of(config)
    assert redis_client.get(k.slot(workflow_id)) is None
    assert redis_client.zcard(k.index(workflow_id)) == 0
    assert client.get(f"/api/workflows/{workflow_id}").get_json()["active_run_id"] is None


def test_a_wrong_input_for_sleep_is_422_with_its_pointer_and_takes_nothing(
        idle_client, redis_client, config):
    body = expect_status(idle_client.post("/api/workflows/sleep/test-runs",
                                          json={"input": {"seconds": "soon"}}), 422)
    assert body["error"] == "invalid_input"
    assert [e["pointer"] for e in body["errors"]] == ["/seconds"]
    assert body["errors"][0]["message"] and "/seconds" in body["message"]
    nothing_taken(idle_client, redis_client, config, "sleep")
    assert trigger(idle_client, "sleep", {"seconds": 1})["status"] == RunStatus.QUEUED


def test_a_json_schema_dict_reports_every_problem(idle_client, redis_client, config):
    body = expect_status(idle_client.post(
        "/api/workflows/counted/test-runs",
        json={"input": {"count": 0, "tags": ["a", 7], "extra": True}}), 422)
    assert sorted(e["pointer"] for e in body["errors"]) == ["", "/count", "/tags/1"]
    missing = expect_status(idle_client.post("/api/workflows/counted/test-runs",
                                              json={"input": {}}), 422)
    assert [e["pointer"] for e in missing["errors"]] == [""]
    assert "count" in missing["errors"][0]["message"]
    nothing_taken(idle_client, redis_client, config, "counted")
    assert trigger(idle_client, "counted", {"count": 2})["status"] == RunStatus.QUEUED


def test_a_workflow_without_a_schema_takes_any_object(idle_client):
    run = trigger(idle_client, "hang", {"anything": [1, {"x": None}]})
    assert run["status"] == RunStatus.QUEUED and run["input"] == {"anything": [1, {"x": None}]}


def test_the_schema_is_published_with_the_workflow(idle_client):
    sleep = expect_status(idle_client.get("/api/workflows/sleep"), 200)
    assert sleep["input_schema"]["properties"]["seconds"]["type"] == "number"
    assert sleep["input_schema"]["properties"]["seconds"]["default"] == 5
    echo = expect_status(idle_client.get("/api/workflows/echo"), 200)["input_schema"]
    assert echo["type"] == "object"
    assert expect_status(idle_client.get("/api/workflows/hang"), 200)["input_schema"] is None
    listed = expect_status(idle_client.get("/api/workflows"), 200)["workflows"]
    assert all("input_schema" not in w for w in listed)  # the list stays light


@pytest.fixture
def limited(redis_client):
    config = make_config(TRIGGER_RATE_LIMIT="1/minute")
    yield create_app(config).test_client(), config
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


def test_a_wrong_input_does_not_count_against_the_rate_limit(limited):
    client, _ = limited
    for _ in range(3):
        assert client.post("/api/workflows/sleep/test-runs",
                           json={"input": {"seconds": "soon"}}).status_code == 422
    assert trigger(client, "sleep", {"seconds": 1})["status"] == RunStatus.QUEUED
    # now over the limit: a wrong input is still told it is wrong (422 before 429) ...
    assert client.post("/api/workflows/echo/test-runs",
                       json={"input": {"x": 1}}).status_code == 429
    assert client.post("/api/workflows/fail/test-runs",
                       json={"input": {"message": 3}}).status_code == 422


def test_an_unknown_workflow_is_404_before_the_input_is_looked_at(idle_client):
    assert idle_client.post("/api/workflows/nope/test-runs",
                            json={"input": {"seconds": "soon"}}).status_code == 404
