"""Bodies must be declared JSON: a browser's cross-site `text/plain` or form POST (sent without
a CORS preflight) is refused with 415 before anything is read or taken; a POST with no body and
no content type, and JSON with a charset, still pass."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.support.api import active_run_id, expect_status
from tests.support.procs import Gunicorn
from web import create_app
from worker.status import RunStatus

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


def test_gunicorn_refuses_a_cross_site_text_plain_post(config):
    server = Gunicorn(config, workers=1, threads=2).wait_ready()
    try:
        req = urllib.request.Request(server.url + TRIGGER, data=b'{"input": {}}', method="POST",
                                     headers={"Content-Type": "text/plain", **CROSS_SITE})
        try:
            urllib.request.urlopen(req, timeout=10)
            status = 200
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 415
        with urllib.request.urlopen(server.url + "/api/workflows/echo", timeout=10) as resp:
            assert b'"active_run_id":null' in resp.read().replace(b" ", b"")
    finally:
        server.kill_group()
