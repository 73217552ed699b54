"""Callers told apart and throttled, and what the page's answers say to a browser: named
tokens and `triggered_by`, the trigger rate limit (429 with Retry-After, no slot taken), the
input size limit, security headers, CORS only when asked for, and tokens kept out of logs,
errors and reprs."""

from __future__ import annotations

import logging

import pytest

from tests.support.api import active_run_id, expect_status
from web import create_app
from worker.core.errors import SettingsError
from worker.core.settings import Settings
from worker.core.status import RunStatus

TOKENS = "alice:tok-alice-123,ci:tok-ci-456"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def named(config):
    return create_app(dict(config, API_TOKENS=TOKENS, API_TOKEN="tok-unnamed")).test_client()


def test_named_tokens_record_the_caller_on_the_run_and_in_the_log(named, caplog):
    with caplog.at_level(logging.INFO):
        resp = named.post("/api/workflows/echo/test-runs", headers=bearer("tok-ci-456"))
    run = expect_status(resp, 202)
    assert run["triggered_by"] == "ci"
    read = expect_status(named.get(f"/api/test-runs/{run['run_id']}",
                                   headers=bearer("tok-alice-123")), 200)
    assert read["triggered_by"] == "ci"
    assert any("admitted" in r.getMessage() and "triggered_by=ci" in r.getMessage()
               for r in caplog.records)
    named.post(f"/api/test-runs/{run['run_id']}/cancel", headers=bearer("tok-ci-456"))
    unnamed = expect_status(named.post("/api/workflows/echo/test-runs",
                                       headers=bearer("tok-unnamed")), 202)
    assert unnamed["triggered_by"] is None


def test_reads_need_a_token_too_and_the_page_and_contract_do_not(named):
    for path in ("/api/workflows", "/api/workflows/echo/test-runs",
                 f"/api/test-runs/echo-{'0' * 32}", f"/api/test-runs/echo-{'0' * 32}/events"):
        assert expect_status(named.get(path), 401)["error"] == "unauthorized"
    for path in ("/", "/static/app.js", "/openapi.json", "/healthz"):
        assert named.get(path).status_code == 200, path


def test_tokens_are_never_in_reprs_errors_or_logs(config, caplog):
    settings = Settings.from_env(overrides=dict(config, API_TOKENS=TOKENS))
    assert "tok-alice" not in repr(settings)
    with pytest.raises(SettingsError) as info:
        Settings.from_env(overrides=dict(config, API_TOKENS="alice:ok,broken-secret-token"))
    assert "broken-secret-token" not in str(info.value) and "entry 2" in str(info.value)
    with caplog.at_level(logging.DEBUG):
        client = create_app(dict(config, API_TOKENS=TOKENS)).test_client()
        body = expect_status(client.get("/api/workflows", headers=bearer("tok-wrong-789")), 401)
        client.get("/api/workflows", headers=bearer("tok-alice-123"))
    assert "tok-" not in str(body) and "tok-" not in caplog.text
    from web.auth import Tokens
    assert "tok" not in repr(Tokens(((None, b"tok-x"),)))


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


def test_an_input_over_the_limit_is_413_and_takes_no_slot(config):
    client = create_app(dict(config, TEST_RUN_MAX_INPUT_BYTES="100")).test_client()
    body = expect_status(client.post("/api/workflows/echo/test-runs",
                                     json={"input": {"x": "a" * 100}}), 413)
    assert body["error"] == "payload_too_large" and body["field"] == "input"
    assert active_run_id(client, "echo") is None
    expect_status(client.post("/api/workflows/echo/test-runs", json={"input": {"x": 1}}), 202)


def test_the_page_sends_a_strict_csp_and_nosniff_and_no_cors_by_default(idle_client):
    page = idle_client.get("/")
    assert page.status_code == 200 and b'src="/static/app.js"' in page.data
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert b"<script>" not in page.data and b"onclick" not in page.data
    for resp in (page, idle_client.get("/api/workflows"), idle_client.get("/nope")):
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    cross = idle_client.get("/api/workflows", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in cross.headers


def test_cors_only_for_the_configured_origins(config):
    client = create_app(dict(config, CORS_ORIGINS="https://tools.example",
                             API_TOKENS=TOKENS)).test_client()
    ok = client.options("/api/workflows/echo/test-runs", headers={
        "Origin": "https://tools.example", "Access-Control-Request-Method": "POST"})
    assert ok.headers["Access-Control-Allow-Origin"] == "https://tools.example"
    assert "Authorization" in ok.headers["Access-Control-Allow-Headers"]
    other = client.get("/api/workflows", headers={"Origin": "https://evil.example",
                                                  **bearer("tok-ci-456")})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_long_log_line_is_cut(config):
    from worker.core.store import RunStore
    store = RunStore(Settings.from_env(overrides=dict(config, TEST_RUN_MAX_LOG_LINE="50")))
    run_id = store.admit("echo", {}).run_id  # type: ignore[union-attr]
    store.append_log(run_id, "y" * 500)
    run = store.get(run_id)
    assert run is not None and run.status is RunStatus.QUEUED
    assert run.logs == ["y" * 50 + " … [450 characters cut]"]
