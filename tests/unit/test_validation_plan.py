"""The planned request validation (web/validation.py) stands in for flask-openapi3's on every
route that declares request models, answers what it answered, and a run's URL is url_for's."""

from __future__ import annotations

from flask import url_for

from web import create_app
from web.encoding import run_url
from web.validation import planned

#: the API routes with request models (path, query, headers or body)
PLANNED = {"api.get_workflow", "api.trigger", "api.list_runs", "api.get_run",
           "api.get_run_logs", "api.cancel_run", "api.run_events"}


def _app():  # no Redis is touched: the app is built, routes are matched, nothing is admitted
    return create_app({"REDIS_URL": "redis://127.0.0.1:1/0", "API_TOKEN": "",
                       "API_TOKENS": ""})


def test_every_route_with_request_models_is_planned():
    app = _app()
    found = {endpoint for endpoint, view in app.view_functions.items()
             if view.__code__ is planned(lambda: None).__code__}
    assert found == PLANNED


def test_a_bad_path_query_or_header_is_the_same_400_naming_its_field():
    client = _app().test_client()
    bad_path = client.post("/api/workflows/-nope/test-runs", json={})
    assert bad_path.status_code == 400
    assert bad_path.get_json()["field"] == "workflow_id"
    bad_query = client.get("/api/workflows/echo/test-runs?limit=0")
    assert bad_query.status_code == 400
    assert bad_query.get_json()["field"] == "limit"
    bad_header = client.post("/api/workflows/echo/test-runs", json={},
                             headers={"Idempotency-Key": "a\tb"})
    assert bad_header.status_code == 400
    assert bad_header.get_json()["field"] == "Idempotency-Key"
    unknown = client.post("/api/workflows/echo/test-runs", json={"inptu": {}})
    assert unknown.status_code == 400
    assert unknown.get_json()["fields"] == ["inptu"]


def test_the_document_still_declares_the_models():
    doc = _app().test_client().get("/openapi.json").get_json()
    trigger = doc["paths"]["/api/workflows/{workflow_id}/test-runs"]["post"]
    names = {p["name"] for p in trigger["parameters"]}
    assert {"workflow_id", "wait", "on_conflict", "Idempotency-Key"} <= names


def test_run_url_is_url_for_also_behind_a_script_root():
    app = _app()
    run_id = "a.b:c_d-0123456789abcdef0123456789abcdef"
    for root in ("", "/prefix"):
        with app.test_request_context("/", base_url=f"http://localhost{root}"):
            assert run_url(run_id) == url_for("api.get_run", run_id=run_id)
            assert run_url(run_id).startswith(f"{root}/api/test-runs/")
