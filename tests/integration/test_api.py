"""Every client mistake gets its 4xx with a stable code, in the documented order
(401 → 400 id → 413 → 400 body → 404 → 409), and never a leaked slot. No worker is needed:
these runs stay queued on a queue nobody consumes."""

from __future__ import annotations

import pytest

from tests.support.api import active_run_id, expect_status, trigger
from web import create_app
from web.schemas import MAX_BODY_BYTES, MAX_LOG_OFFSET
from worker.core.status import RunStatus


def err(resp, status: int, code: str) -> dict:
    body = expect_status(resp, status)
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_trigger_answers_202_with_location_and_queued_run(idle_client):
    resp = idle_client.post("/api/workflows/echo/test-runs", json={"input": {"a": 1}})
    assert resp.status_code == 202
    run = resp.get_json()
    assert resp.headers["Location"] == f"/api/test-runs/{run['run_id']}"
    assert run["status"] == RunStatus.QUEUED and run["input"] == {"a": 1}
    assert set(run) >= {"run_id", "workflow_id", "type", "status", "created_at", "started_at",
                        "finished_at", "input", "result", "error", "error_type", "logs",
                        "worker"}
    assert active_run_id(idle_client, "echo") == run["run_id"]


@pytest.mark.parametrize("body", [None, b"", b"{}", b'{"input": null}'])
def test_input_omitted_or_null_means_empty_object(idle_client, body):
    resp = idle_client.post("/api/workflows/echo/test-runs", data=body,
                            content_type="application/json")
    assert resp.status_code == 202
    assert resp.get_json()["input"] == {}


def test_second_trigger_is_409_naming_the_holder(idle_client):
    first = trigger(idle_client, "echo")
    body = err(idle_client.post("/api/workflows/echo/test-runs"), 409, "test_run_in_progress")
    assert body["run_id"] == first["run_id"]


@pytest.mark.parametrize("data, why", [
    (b"{not json", "malformed"),
    (b"[1, 2]", "not an object"),
    (b'"text"', "not an object"),
    (b'{"input": [1]}', "input not an object"),
    (b'{"input": "x"}', "input not an object"),
    (b'{"input": {}, "extra": 1}', "unknown field"),
    (b"\xff\xfe", "not utf-8"),
    (b"[" * 60000, "nested too deeply"),
    (b'{"input": {"x": NaN}}', "NaN is not JSON"),
    (b'{"input": {"x": -Infinity}}', "Infinity is not JSON"),
])
def test_bad_body_is_400_and_takes_no_slot(idle_client, data, why):
    err(idle_client.post("/api/workflows/echo/test-runs", data=data,
                         content_type="application/json"), 400, "invalid_request")
    assert active_run_id(idle_client, "echo") is None, why


@pytest.mark.parametrize("wid", ["-lead", "a" * 129, "sp ace", "bad%24", "a/b"])
def test_bad_workflow_id_is_400(idle_client, wid):
    err(idle_client.post(f"/api/workflows/{wid}/test-runs"), 400, "invalid_request")


def test_unknown_workflow_is_404(idle_client):
    err(idle_client.post("/api/workflows/nope/test-runs"), 404, "workflow_not_found")
    err(idle_client.get("/api/workflows/nope"), 404, "workflow_not_found")
    err(idle_client.get("/api/workflows/nope/test-runs"), 404, "workflow_not_found")


def test_body_over_64_kib_is_413(idle_client):
    big = b'{"input": {"x": "' + b"a" * MAX_BODY_BYTES + b'"}}'
    err(idle_client.post("/api/workflows/echo/test-runs", data=big,
                         content_type="application/json"), 413, "payload_too_large")
    assert active_run_id(idle_client, "echo") is None


def test_check_order_id_before_size_before_body_before_404(idle_client):
    big = b"x" * (MAX_BODY_BYTES + 1)
    as_json = {"content_type": "application/json"}
    err(idle_client.post("/api/workflows/-bad/test-runs", data=big, **as_json), 400,
        "invalid_request")
    err(idle_client.post("/api/workflows/nope/test-runs", data=big, **as_json), 413,
        "payload_too_large")
    err(idle_client.post("/api/workflows/nope/test-runs", data=b"{", **as_json), 400,
        "invalid_request")
    # the media type comes before all of them: nothing of a non-JSON request is read
    err(idle_client.post("/api/workflows/-bad/test-runs", data=big), 415,
        "unsupported_media_type")


def test_bad_query_and_headers_are_400(idle_client):
    err(idle_client.post("/api/workflows/echo/test-runs?on_conflict=maybe"), 400,
        "invalid_request")
    err(idle_client.post("/api/workflows/echo/test-runs",
                         headers={"Idempotency-Key": "x" * 300}), 400, "invalid_request")
    for limit in ("0", "-1", "abc", "101"):
        err(idle_client.get(f"/api/workflows/echo/test-runs?limit={limit}"), 400,
            "invalid_request")
    assert active_run_id(idle_client, "echo") is None


@pytest.mark.parametrize("query", [f"offset={MAX_LOG_OFFSET + 1}", "offset=9223372036854775807",
                                   "offset=-1", "offset=1e3", "limit=0", "limit=1001",
                                   "limit=99999999999999999999999"])
def test_every_numeric_query_parameter_is_bounded(idle_client, query):
    """A log page's offset had no upper bound: LRANGE's range error was taken for a Redis
    outage (503 `redis`), for a real run and an unknown one alike."""
    run = trigger(idle_client, "echo")
    for run_id in (run["run_id"], "echo-" + "0" * 32):
        body = err(idle_client.get(f"/api/test-runs/{run_id}/logs?{query}"), 400,
                   "invalid_request")
        assert body["field"] == query.split("=")[0]
    page = expect_status(idle_client.get(f"/api/test-runs/{run['run_id']}/logs?offset="
                                         f"{MAX_LOG_OFFSET}&limit=1000"), 200)
    assert page["lines"] == [] and page["next_offset"] is None
    err(idle_client.get(f"/api/test-runs/echo-{'0' * 32}/logs?offset={MAX_LOG_OFFSET}"), 404,
        "test_run_not_found")


def test_unknown_run_is_404(idle_client):
    for rid in ("nope", "echo-" + "0" * 32, "../../etc", "x" * 500):
        err(idle_client.get(f"/api/test-runs/{rid}"), 404, "test_run_not_found")
        err(idle_client.post(f"/api/test-runs/{rid}/cancel"), 404, "test_run_not_found")


def test_cancel_of_a_finished_run_is_409(idle_client):
    run = trigger(idle_client, "echo")
    assert idle_client.post(f"/api/test-runs/{run['run_id']}/cancel").status_code == 202
    body = err(idle_client.post(f"/api/test-runs/{run['run_id']}/cancel"), 409,
               "test_run_finished")
    assert body["status"] == RunStatus.CANCELLED


def test_unknown_route_and_wrong_method_are_json(idle_client):
    err(idle_client.get("/api/nothing-here"), 404, "not_found")
    err(idle_client.delete("/api/workflows/echo/test-runs"), 405, "method_not_allowed")


def test_list_runs_newest_first_with_limit(idle_client):
    ids = []
    for _ in range(3):
        run = trigger(idle_client, "echo")
        ids.append(run["run_id"])
        idle_client.post(f"/api/test-runs/{run['run_id']}/cancel")
    runs = idle_client.get("/api/workflows/echo/test-runs?limit=2").get_json()["runs"]
    assert [r["run_id"] for r in runs] == ids[::-1][:2]
    listed = idle_client.get("/api/workflows").get_json()["workflows"]
    assert {w["id"] for w in listed} >= {"echo", "sleep", "fail", "hang"}
    assert all(set(w) >= {"id", "description", "active_run_id"} for w in listed)


class TestAuth:
    @pytest.fixture
    def client(self, config):
        return create_app(dict(config, API_TOKEN="s3cret")).test_client()

    def test_missing_or_wrong_token_is_401_before_anything_else(self, client):
        err(client.get("/api/workflows"), 401, "unauthorized")
        err(client.post("/api/workflows/-bad/test-runs", data=b"x" * (MAX_BODY_BYTES + 1)),
            401, "unauthorized")
        err(client.get("/api/workflows", headers={"Authorization": "Bearer nope"}), 401,
            "unauthorized")
        err(client.get("/api/workflows", headers={"Authorization": "Basic s3cret"}), 401,
            "unauthorized")

    def test_right_token_passes_and_health_is_open(self, client):
        ok = client.get("/api/workflows", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert client.get("/healthz").status_code == 200


def test_health_and_readiness(idle_client, config):
    assert idle_client.get("/healthz").get_json() == {"status": "ok"}
    ready = idle_client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["checks"]["redis"] == "ok"
    down = create_app(dict(config, CELERY_BROKER_URL="redis://127.0.0.1:1/0")).test_client()
    resp = down.get("/readyz")
    body = err(resp, 503, "not_ready")
    assert "broker" in body["message"] and body["checks"]["redis"] == "ok"
