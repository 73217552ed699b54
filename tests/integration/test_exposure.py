"""Who can reach the web: Host headers outside TRUSTED_HOSTS get 400 (no DNS rebinding), the
web says at start whether auth is on, and it refuses to listen beyond loopback without a token
unless ALLOW_ANONYMOUS=true. Real gunicorn: the refusal happens before it binds."""

from __future__ import annotations

import urllib.request

import pytest

from tests.support.http import request
from tests.support.procs import Gunicorn
from web import create_app


def test_a_foreign_host_header_is_400_and_takes_no_slot(config):
    client = create_app(config).test_client()
    resp = client.post("/api/workflows/echo/test-runs", headers={"Host": "evil.example:8000"})
    assert resp.status_code == 400 and resp.get_json()["error"] == "host_not_allowed"
    assert client.get("/api/workflows/echo").get_json()["active_run_id"] is None
    for host in ("localhost", "127.0.0.1:8000", "localhost:5000"):
        assert client.get("/healthz", headers={"Host": host}).status_code == 200, host


def test_trusted_hosts_setting_names_them_and_star_allows_any(config):
    named = create_app(dict(config, TRUSTED_HOSTS="runs.example,.corp.example")).test_client()
    assert named.get("/healthz", headers={"Host": "runs.example"}).status_code == 200
    assert named.get("/healthz", headers={"Host": "ci.corp.example"}).status_code == 200
    assert named.get("/healthz", headers={"Host": "localhost"}).status_code == 400
    anyone = create_app(dict(config, TRUSTED_HOSTS="*")).test_client()
    assert anyone.get("/healthz", headers={"Host": "whatever.example"}).status_code == 200


def raw_get(url: str, host: str) -> int:
    req = urllib.request.Request(url, headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_gunicorn_checks_the_host_and_logs_whether_auth_is_on(config):
    server = Gunicorn(config, workers=1, threads=2).wait_ready()
    try:
        assert raw_get(server.url + "/api/workflows", "rebound.attacker.example") == 400
        assert request("GET", server.url + "/api/workflows")[0] == 200
        assert "API auth is OFF" in server.log()
    finally:
        server.kill_group()


def test_gunicorn_refuses_a_public_bind_without_a_token(config):
    server = Gunicorn(config, workers=1, threads=2, host="0.0.0.0")
    try:
        assert server.wait_exit(30) != 0
        assert "refusing to listen on 0.0.0.0" in server.log()
    finally:
        server.kill_group()


@pytest.mark.parametrize("extra", [{"ALLOW_ANONYMOUS": "true"}, {"API_TOKEN": "t0ken"}],
                         ids=["anonymous allowed", "token set"])
def test_gunicorn_binds_publicly_when_told_or_with_a_token(config, extra):
    server = Gunicorn(dict(config, **extra), workers=1, threads=2, host="0.0.0.0").wait_ready()
    try:
        assert request("GET", server.url + "/healthz")[0] == 200
        if "API_TOKEN" in extra:
            assert "API auth is on" in server.log()
    finally:
        server.kill_group()


def test_a_foreign_host_is_refused_before_the_token_is_checked(
        config: dict[str, str]) -> None:
    """A trigger with a foreign Host and a wrong token answered 401: Flask raises its
    TRUSTED_HOSTS error only at dispatch, after the auth hook. The Host check comes first."""
    from web import create_app

    client = create_app(dict(config, API_TOKEN="t0ken")).test_client()
    for auth in ({"Authorization": "Bearer wrong"}, {}):
        resp = client.post("/api/workflows/echo/test-runs", json={},
                           headers={"Host": "evil.example", **auth})
        assert resp.status_code == 400 and resp.get_json()["error"] == "host_not_allowed"
        resp = client.get("/api/workflows", headers={"Host": "evil.example", **auth})
        assert resp.status_code == 400 and resp.get_json()["error"] == "host_not_allowed"
    assert client.post("/api/workflows/echo/test-runs", json={},
                       headers={"Authorization": "Bearer wrong"}).status_code == 401
