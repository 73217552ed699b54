"""The OpenAPI document against the live app: schemathesis generates requests from
/openapi.json (valid and invalid ones) for every route, and every answer must be declared —
its status, content type, headers and body schema — and none may be a 5xx. Sized for `make
test` (CONTRACT_EXAMPLES per route); `make prove` runs it longer."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, reject, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.http import request

EXAMPLES = int(os.environ.get("CONTRACT_EXAMPLES", "50"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]

#: every route of the document, so a route added without a declaration is fuzzed too
OPERATIONS = ["GET /api/workflows", "GET /api/workflows/{workflow_id}",
              "POST /api/workflows/{workflow_id}/test-runs",
              "GET /api/workflows/{workflow_id}/test-runs", "GET /api/test-runs/{run_id}",
              "POST /api/test-runs/{run_id}/cancel", "GET /api/test-runs/{run_id}/events",
              "GET /api/test-runs/{run_id}/logs", "GET /healthz", "GET /readyz"]
#: one trigger per workflow with an input schema, its body's `input` being that schema
PER_WORKFLOW = [f"POST /api/workflows/{w}/test-runs" for w in ("counted", "echo", "fail", "sleep")]
OPERATIONS += PER_WORKFLOW


def operations(schema) -> dict[str, object]:
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[f"{operation.method.upper()} {operation.path}"] = operation
    return found


def test_the_fuzzed_routes_are_every_route(api_schema):
    assert sorted(operations(api_schema)) == sorted(OPERATIONS)


# schemathesis' own pytest loader (`from_fixture`) does not run under pytest 9.2, so each
# route is driven through its hypothesis strategy here
#: the routes with something a request can get wrong (a pattern, a range, an enum, a body, a
#: header's length): the others take any string, so there is no invalid request to make
NEGATABLE = ["GET /api/workflows/{workflow_id}", "POST /api/workflows/{workflow_id}/test-runs",
             "GET /api/workflows/{workflow_id}/test-runs", "GET /api/test-runs/{run_id}",
             "GET /api/test-runs/{run_id}/events", "GET /api/test-runs/{run_id}/logs",
             *PER_WORKFLOW]
CASES = [(label, GenerationMode.POSITIVE) for label in OPERATIONS] + [
    (label, GenerationMode.NEGATIVE) for label in NEGATABLE]


#: gunicorn's `limit_request_line` (its default, which gunicorn.conf.py keeps): a longer request
#: line — 1,000 examples a route (`make prove`) do make a query string of over 4 KB — is answered
#: 414 by gunicorn itself before the app sees it, a limit of the transport, not of the API
REQUEST_LINE_LIMIT = 4094


def request_line(request) -> int:
    """The length of `METHOD /path?query HTTP/1.1` as sent."""
    return len(f"{request.method} {request.path_url} HTTP/1.1")


@pytest.mark.parametrize("label, mode", CASES)
def test_every_answer_is_declared_and_none_is_a_5xx(api_schema, label, mode):
    operation = operations(api_schema)[label]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case) -> None:
        response = case.call(timeout=10)
        if response.status_code == 414 and request_line(response.request) > REQUEST_LINE_LIMIT:
            reject()  # gunicorn's own answer: the app never saw it (below)
        case.validate_response(response, checks=CHECKS, transport_kwargs=dict(timeout=10))

    check()


def test_the_document_is_openapi_3_1_with_every_error_code(contract_server):
    status, doc = request("GET", contract_server + "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1")
    trigger = doc["paths"]["/api/workflows/{workflow_id}/test-runs"]["post"]["responses"]
    assert set(trigger) >= {"200", "202", "400", "401", "404", "409", "413", "415", "422", "429",
                            "500", "503"}
    assert trigger["202"]["headers"]["Location"]["required"] is True
    events = doc["paths"]["/api/test-runs/{run_id}/events"]["get"]["responses"]
    assert "text/event-stream" in events["200"]["content"]
    codes = {s["properties"]["error"].get("const") for s in doc["components"]["schemas"].values()
             if "error" in s.get("properties", {})}
    from web.errors import ANSWERS
    assert {cls.code for cls in ANSWERS} <= codes
    # each workflow's own trigger takes that workflow's input schema
    sleep = doc["paths"]["/api/workflows/sleep/test-runs"]["post"]
    body = sleep["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    input_ref = doc["components"]["schemas"][body.rsplit("/", 1)[1]]["properties"]["input"]
    seconds = doc["components"]["schemas"][input_ref["anyOf"][0]["$ref"].rsplit("/", 1)[1]]
    assert seconds["properties"]["seconds"]["type"] == "number"
    wait = next(p for p in sleep["parameters"] if p["name"] == "wait")
    assert wait["schema"]["anyOf"][0]["maximum"] == 0.5
