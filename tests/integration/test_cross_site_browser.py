"""Tried as an attacker would, with a real browser: a page on another site (127.0.0.1 is
another site than localhost) posts to the API the ways that need no CORS preflight — JSON
written as `text/plain`, a form, and no body at all — and none of them admits a run (415, 415,
403). The same fetch from the service's own page does admit one: the browser does send them,
and it is the checks that refuse."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from devtools.redis_server import free_port
from tests.support.http import request
from tests.support.procs import Gunicorn, wait_for

ATTACK = """<!doctype html><title>cat pictures</title><script>
async function attack(api) {
  const url = api + "/api/workflows/echo/test-runs?on_conflict=replace";
  await fetch(url, {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                    body: JSON.stringify({input: {pwned: true}})});
  const form = new URLSearchParams({input: "x"});
  await fetch(url, {method: "POST", mode: "no-cors", body: form});
  await fetch(url, {method: "POST", mode: "no-cors"});
  return "sent";
}
</script>"""


@pytest.fixture
def attacker_site() -> Iterator[str]:
    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = ATTACK.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


def test_a_page_of_another_site_cannot_trigger_a_run(config, page, attacker_site):
    server = Gunicorn(config, workers=1, threads=4).wait_ready()
    api = f"http://localhost:{server.port}"
    try:
        page.goto(attacker_site)
        assert page.evaluate(f"attack({api!r})") == "sent"
        assert request("GET", api + "/api/workflows/echo")[1]["active_run_id"] is None
        # all three reached the server and were refused: text/plain and the form 415, no body 403
        line = '"POST /api/workflows/echo/test-runs?on_conflict=replace HTTP/1.1" '
        wait_for(lambda: server.log().count(line) == 3, 10, "gunicorn's access log")
        assert [server.log().count(line + code) for code in ("415", "403")] == [2, 1], \
            server.log()[-2000:]

        # the control: the same no-body POST from the service's own page is admitted
        page.goto(api + "/")
        # retried on a network error (3 tries): the page's own requests leave kept-alive
        # connections that gunicorn closes after 2 s idle, and a browser does not resend a POST
        # whose connection closed under it ("Failed to fetch", seen once on a loaded machine);
        # behind the Procfile's nginx gunicorn gets a connection per request
        page.evaluate("""async () => {
          for (let tries = 1; ; tries++) {
            try { return (await fetch('/api/workflows/echo/test-runs', {method: 'POST'})).status }
            catch (error) { if (tries === 3) throw error }
          }
        }""")
        wait_for(lambda: request("GET", api + "/api/workflows/echo")[1]["active_run_id"], 10,
                 "the same-origin POST to admit a run")
    finally:
        server.kill_group()
