"""Who is calling: named tokens and `triggered_by`, reads behind the token too (the page, the
contract and health stay open), tokens kept out of logs, errors and reprs, and what each
token's scopes let it do."""

from __future__ import annotations

import json
import logging

import pytest

from tests.support.api import expect_status
from web import create_app
from web.auth import ROUTE_SCOPES
from worker.core.errors import SettingsError
from worker.core.scopes import Scope
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












# -- scopes -------------------------------------------------------------------------------------

SCOPED = ("ci:tok-ci-111:trigger+read,ops:tok-ops-222:admin,viewer:tok-view-333:read,"
          "janitor:tok-jan-444:cancel,legacy:tok-leg-555")
CI, OPS, VIEWER, JANITOR, LEGACY = (bearer(t) for t in (
    "tok-ci-111", "tok-ops-222", "tok-view-333", "tok-jan-444", "tok-leg-555"))
RUNS = "/api/workflows/{}/test-runs"


@pytest.fixture
def scoped(config):
    return create_app(dict(config, API_TOKENS=SCOPED)).test_client()


def forbidden(resp, scope: str) -> None:
    body = expect_status(resp, 403)
    assert (body["error"], body["scope"]) == ("forbidden", scope), body
    assert f"'{scope}'" in body["message"]


def test_a_scope_missing_for_the_route_is_403_naming_it(scoped):
    """Any token could trigger, cancel or replace any caller's run."""
    forbidden(scoped.post(RUNS.format("echo"), headers=VIEWER), "trigger")
    forbidden(scoped.post(RUNS.format("echo"), headers=JANITOR), "trigger")
    for path in ("/api/workflows", "/api/workflows/echo", RUNS.format("echo"),
                 f"/api/test-runs/echo-{'0' * 32}", f"/api/test-runs/echo-{'0' * 32}/logs",
                 f"/api/test-runs/echo-{'0' * 32}/events"):
        forbidden(scoped.get(path, headers=JANITOR), "read")
        assert scoped.get(path, headers=VIEWER).status_code in (200, 404), path
    forbidden(scoped.post(f"/api/test-runs/echo-{'0' * 32}/cancel", headers=VIEWER), "trigger")
    # before the body is read: a scope's 403 comes before a 415 (and before 404)
    forbidden(scoped.post(RUNS.format("nope"), data="x", content_type="text/plain",
                          headers=VIEWER), "trigger")
    assert scoped.get("/api/workflows/echo").status_code == 401  # no token: 401 first


def test_replace_needs_admin_and_nothing_is_taken_without_it(scoped):
    held = expect_status(scoped.post(RUNS.format("echo"), headers=CI), 202)
    forbidden(scoped.post(RUNS.format("echo") + "?on_conflict=replace", headers=CI), "admin")
    assert scoped.get("/api/workflows/echo", headers=CI).get_json()["active_run_id"] == \
        held["run_id"]
    replaced = expect_status(scoped.post(RUNS.format("echo") + "?on_conflict=replace",
                                         headers=OPS), 202)
    gone = expect_status(scoped.get(f"/api/test-runs/{held['run_id']}", headers=CI), 200)
    assert gone["status"] == RunStatus.CANCELLED and replaced["triggered_by"] == "ops"


def test_trigger_cancels_its_own_runs_and_cancel_anyones(scoped):
    ops_run = expect_status(scoped.post(RUNS.format("echo"), headers=OPS), 202)
    forbidden(scoped.post(f"/api/test-runs/{ops_run['run_id']}/cancel", headers=CI), "cancel")
    assert scoped.get(f"/api/test-runs/{ops_run['run_id']}",
                      headers=CI).get_json()["status"] == RunStatus.QUEUED
    expect_status(scoped.post(f"/api/test-runs/{ops_run['run_id']}/cancel", headers=JANITOR),
                  202)
    own = expect_status(scoped.post(RUNS.format("echo"), headers=CI), 202)
    assert expect_status(scoped.post(f"/api/test-runs/{own['run_id']}/cancel", headers=CI),
                         202)["status"] == RunStatus.CANCELLED
    # an unknown run is still 404 (the run is read before its owner is compared)
    body = expect_status(scoped.post(f"/api/test-runs/echo-{'0' * 32}/cancel", headers=CI), 404)
    assert body["error"] == "test_run_not_found"


def test_only_admin_sees_who_triggered_the_runs_of_others(scoped):
    """Every token saw other callers' names in `triggered_by`."""
    ci_run = expect_status(scoped.post(RUNS.format("echo"), headers=CI), 202)
    assert ci_run["triggered_by"] == "ci"
    run_id = ci_run["run_id"]
    for headers, shown in ((CI, "ci"), (OPS, "ci"), (LEGACY, "ci"), (VIEWER, None)):
        assert scoped.get(f"/api/test-runs/{run_id}", headers=headers).get_json()[
            "triggered_by"] == shown
        for fields in ("", "?fields=full"):
            runs = scoped.get(RUNS.format("echo") + fields, headers=headers).get_json()["runs"]
            assert [r["triggered_by"] for r in runs if r["run_id"] == run_id] == [shown]
    expect_status(scoped.post(f"/api/test-runs/{run_id}/cancel", headers=CI), 202)
    stream = scoped.get(f"/api/test-runs/{run_id}/events", headers=VIEWER, buffered=True)
    frames = [json.loads(line[6:]) for line in stream.get_data(as_text=True).splitlines()
              if line.startswith("data: ")]
    assert [f.get("triggered_by", "-") for f in frames if "input" in f] == [None, None]


def test_scopes_are_read_from_api_tokens(config):
    tokens = {t.name: t.scopes for t in Settings.from_env(overrides=dict(
        config, API_TOKENS=SCOPED, API_TOKEN="tok-unnamed")).callers()}
    assert tokens["ci"] == {Scope.TRIGGER, Scope.READ} and tokens["ops"] == {Scope.ADMIN}
    assert tokens["legacy"] == tokens[None] == set(Scope)
    for raw in ("ci:tok-secret-1:write", "ci:tok-secret-1:", "ci:tok-secret-1:read+",
                "ci:tok:secret-1"):
        with pytest.raises(SettingsError) as info:
            Settings.from_env(overrides=dict(config, API_TOKENS=raw))
        assert "secret" not in str(info.value) and "entry 1" in str(info.value)


def test_every_api_route_names_its_scopes(config):
    app = create_app(config)
    api = {r.endpoint for r in app.url_map.iter_rules() if r.rule.startswith("/api/")}
    assert api == set(ROUTE_SCOPES)
