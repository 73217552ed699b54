"""Bodies must be declared JSON: a browser's cross-site `text/plain` or form POST (sent without
a CORS preflight) is refused with 415 before anything is read or taken; a POST with no body from
another site (Sec-Fetch-Site) is 403 unless its origin is in CORS_ORIGINS; a POST with no body
and no content type (curl), and JSON with a charset, still pass. A real browser tries all three
in test_cross_site_browser.py. And what the answers tell a browser: a strict
Content-Security-Policy and nosniff everywhere, CORS headers only for CORS_ORIGINS."""

from __future__ import annotations

from tests.integration.test_auth import TOKENS, bearer
from tests.support.api import active_run_id, expect_status
from web import create_app
from worker.core.status import RunStatus

TRIGGER = "/api/workflows/echo/test-runs"
CROSS_SITE = {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"}


def test_non_json_bodies_are_415_and_take_no_slot(config):
    client = create_app(config).test_client()
    for content_type, body in (("text/plain", b'{"input": {}}'),
                               ("text/plain;charset=UTF-8", b""),
                               ("application/x-www-form-urlencoded", b"input=1"),
                               ("multipart/form-data; boundary=x", b"--x--")):
        resp = client.post(TRIGGER, data=body, content_type=content_type, headers=CROSS_SITE)
        assert expect_status(resp, 415)["error"] == "unsupported_media_type", content_type
    # a body with no declared type at all
    resp = client.post(TRIGGER, data=b'{"input": {}}')
    assert expect_status(resp, 415)["error"] == "unsupported_media_type"
    assert active_run_id(client, "echo") is None

    # no body at all needs no preflight either: the browser's Sec-Fetch-Site tells
    for site in ("cross-site", "same-site"):
        resp = client.post(TRIGGER, headers={"Origin": "http://localhost:3000",
                                             "Sec-Fetch-Site": site})
        assert expect_status(resp, 403)["error"] == "cross_site_request"
    assert active_run_id(client, "echo") is None

    json_charset = client.post(TRIGGER, data=b'{"input": {"a": 1}}',
                               content_type="application/json; charset=utf-8")
    run = expect_status(json_charset, 202)
    assert run["input"] == {"a": 1}
    cancel = f"/api/test-runs/{run['run_id']}/cancel"
    assert expect_status(client.post(cancel, data=b"x", content_type="text/plain"),
                         415)["error"] == "unsupported_media_type"
    cancelled = expect_status(client.post(cancel), 202)  # no body and no type: fine
    assert cancelled["status"] == RunStatus.CANCELLED
    assert expect_status(client.post(TRIGGER), 202)["input"] == {}


def test_an_origin_in_cors_origins_may_post(config):
    client = create_app(dict(config, CORS_ORIGINS="https://tools.example")).test_client()
    resp = client.post(TRIGGER, json={"input": {}}, headers={
        "Origin": "https://tools.example", "Sec-Fetch-Site": "cross-site"})
    assert expect_status(resp, 202)["status"] == RunStatus.QUEUED
    same = client.post(f"/api/test-runs/{resp.get_json()['run_id']}/cancel",
                       headers={"Sec-Fetch-Site": "same-origin"})
    assert expect_status(same, 202)["status"] == RunStatus.CANCELLED


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
