"""Bodies must be declared JSON: a browser's cross-site `text/plain` or form POST (sent without
a CORS preflight) is refused with 415 before anything is read or taken; a POST with no body from
another site (Sec-Fetch-Site) is 403 unless its origin is in CORS_ORIGINS; a POST with no body
and no content type (curl), and JSON with a charset, still pass. A real browser tries all three
in test_cross_site_browser.py."""

from __future__ import annotations

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
