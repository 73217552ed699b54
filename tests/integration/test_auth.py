"""Who is calling: named tokens and `triggered_by`, reads behind the token too (the page, the
contract and health stay open), and tokens kept out of logs, errors and reprs."""

from __future__ import annotations

import logging

import pytest

from tests.support.api import expect_status
from web import create_app
from worker.core.errors import SettingsError
from worker.core.settings import Settings

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










