"""TRIGGER_RATE_LIMIT: triggers per caller (a token's name, else the address), counted in Redis
and shared by every web process; beyond it 429 with Retry-After, and nothing is taken."""

from __future__ import annotations

from tests.integration.test_auth import TOKENS, bearer
from tests.support.api import expect_status
from web import create_app


def test_the_rate_limit_answers_429_with_retry_after_and_takes_no_slot(config):
    client = create_app(dict(config, API_TOKENS=TOKENS, TRIGGER_RATE_LIMIT="2/minute")
                        ).test_client()
    for _ in range(2):
        run = expect_status(client.post("/api/workflows/echo/test-runs",
                                         headers=bearer("tok-alice-123")), 202)
        client.post(f"/api/test-runs/{run['run_id']}/cancel", headers=bearer("tok-alice-123"))
    resp = client.post("/api/workflows/echo/test-runs", headers=bearer("tok-alice-123"))
    body = expect_status(resp, 429)
    assert body["error"] == "rate_limited" and body["retry_after"] >= 1
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert client.get("/api/workflows/echo", headers=bearer("tok-alice-123")
                      ).get_json()["active_run_id"] is None
    # another caller has a count of its own; a bad request is not counted
    expect_status(client.post("/api/workflows/echo/test-runs", headers=bearer("tok-ci-456")),
                  202)
    expect_status(client.post("/api/workflows/echo/test-runs?on_conflict=x",
                              headers=bearer("tok-alice-123")), 400)
