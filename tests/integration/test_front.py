"""The web as deployed: the Procfile's web line, nginx in front of gunicorn on a private socket
(web/front.py). Slow clients never reach gunicorn's threads; the client's address still keys
the per-client limits; event streams are flushed per event; what nginx refuses is the API's
JSON; and the pair starts and stops as one process.

The slow-client test holds SLOW_CLIENTS sockets for SLOW_CLIENT_HOLD seconds (10 in `make test`,
30 in `make prove`). Before the front, 20 such sockets took gunicorn's 2 × 8 threads and
/healthz timed out until they left."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.api import delete_prefix, make_config
from tests.support.http import request
from tests.support.procs import Front, Worker, wait_for
from tests.support.sse import EventStream
from web import create_app
from worker.core.status import EventKind, RunStatus

SLOW_CLIENTS = int(os.environ.get("SLOW_CLIENTS", "200"))
SLOW_CLIENT_HOLD = float(os.environ.get("SLOW_CLIENT_HOLD", "10"))
#: the most any answer may take while the slow clients are held
WITHIN_S = 1.0


class SlowClients:
    """`n` sockets, each sending a request line and then one header byte every `interval`
    seconds, never finishing its headers; a socket the server closes is opened again, so `n`
    are held the whole time."""

    def __init__(self, port: int, n: int, interval: float = 5.0) -> None:
        self.port, self.n, self.interval = port, n, interval
        self.socks: list[socket.socket] = []
        self.reopened = 0
        for _ in range(n):
            self.socks.append(self._open())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drip, daemon=True)
        self._thread.start()

    def _open(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        return sock

    def _drip(self) -> None:
        while not self._stop.wait(self.interval):
            held = []
            for sock in self.socks:
                try:
                    sock.sendall(b"X")
                    held.append(sock)
                except OSError:
                    sock.close()
            self.reopened += self.n - len(held)
            self.socks = held + [self._open() for _ in range(self.n - len(held))]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for sock in self.socks:
            sock.close()


def timed(method: str, url: str, body: object = None) -> tuple[int, float, object]:
    started = time.monotonic()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, payload = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, json.loads(exc.read())
    except OSError as exc:
        status, payload = 0, str(exc)
    return status, time.monotonic() - started, payload


@pytest.fixture(scope="module")
def front(redis_client):
    """One front for the tests that only send requests (each its own workflow runs)."""
    config = make_config()
    server = Front(config).wait_ready()
    yield server
    server.stop()
    delete_prefix(redis_client, config["TEST_RUN_KEY_PREFIX"])


def test_slow_clients_never_take_the_web_down(front, capsys):
    """SLOW_CLIENTS sockets trickling their headers, held SLOW_CLIENT_HOLD s: /healthz, a
    trigger and its cancel each answer within a second, every time."""
    slow = SlowClients(front.port, SLOW_CLIENTS)
    took: dict[str, list[float]] = {"healthz": [], "trigger": [], "cancel": []}
    try:
        deadline = time.monotonic() + SLOW_CLIENT_HOLD
        while time.monotonic() < deadline:
            status, seconds, _ = timed("GET", front.url + "/healthz")
            assert (status, seconds < WITHIN_S) == (200, True), (status, seconds)
            took["healthz"].append(seconds)
            status, seconds, run = timed("POST", front.url + "/api/workflows/echo/test-runs",
                                         {"input": {}})
            assert (status, seconds < WITHIN_S) == (202, True), (status, seconds, run)
            took["trigger"].append(seconds)
            status, seconds, _ = timed(
                "POST", f"{front.url}/api/test-runs/{run['run_id']}/cancel")  # type: ignore[index]
            assert (status, seconds < WITHIN_S) == (202, True), (status, seconds)
            took["cancel"].append(seconds)
            time.sleep(0.25)
        held = len(slow.socks)
    finally:
        slow.close()
    assert held == SLOW_CLIENTS
    with capsys.disabled():
        print(f"\n  {SLOW_CLIENTS} slow clients held {SLOW_CLIENT_HOLD:g} s "
              f"({slow.reopened} reopened after nginx's header timeout): " + ", ".join(
                  f"{name} n={len(v)} median {statistics.median(v) * 1000:.0f} ms "
                  f"max {max(v) * 1000:.0f} ms" for name, v in took.items()))


def test_the_client_address_comes_from_the_front_not_from_the_client(config):
    """Behind nginx the app's peer is a socket: the client's address is nginx's
    X-Forwarded-For, never the client's own (a spoofed one is replaced), and it keys the
    per-client stream cap (one stream per client per web process here: the front's pool for
    streams has two)."""
    front = Front(dict(config, TEST_RUN_STREAM_KEEPALIVE="1",
                       TEST_RUN_MAX_STREAMS_PER_CLIENT="1")).wait_ready()
    try:
        _, run = request("POST", front.url + "/api/workflows/echo/test-runs", {"input": {}})
        path = f"/api/test-runs/{run['run_id']}/events"  # queued: the streams stay open

        def stream(source: str, spoof: str) -> tuple[socket.socket, int]:
            sock = socket.create_connection(("127.0.0.1", front.port),
                                            source_address=(source, 0))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: "
                         f"{spoof}\r\nX-Real-IP: {spoof}\r\n\r\n".encode())
            return sock, int(sock.recv(64).split(b" ")[1])

        # 127.0.0.2 claims to be 127.0.0.3: were that believed, 127.0.0.3 would be refused
        held = [stream("127.0.0.2", "127.0.0.3") for _ in range(3)]
        statuses = sorted(status for _, status in held)
        assert statuses[-1] == 429 and statuses.count(200) <= 2, statuses
        other, status = stream("127.0.0.3", "127.0.0.2")
        assert status == 200
        for sock, _ in [*held, (other, 0)]:
            sock.close()
        wait_for(lambda: "127.0.0.2 - - " in front.log() and "127.0.0.3 - - " in front.log(),
                 15, "gunicorn's access log to show the clients' own addresses")
    finally:
        front.stop()


def test_events_stream_through_the_front_as_they_are_written(config):
    env = dict(config, TEST_RUN_TIME_LIMIT="10", TEST_RUN_SOFT_TIME_LIMIT="8",
               TEST_RUN_STREAM_KEEPALIVE="1")
    worker = Worker(env).wait_ready()
    server = Front(env).wait_ready()
    try:
        _, run = request("POST", server.url + "/api/workflows/sleep/test-runs",
                         {"input": {"seconds": 3}})
        with EventStream(f"{server.url}/api/test-runs/{run['run_id']}/events") as stream:
            # as the contract declares them, nginx in between
            assert (stream.headers["Cache-Control"], stream.headers["X-Accel-Buffering"]) == \
                ("no-cache", "no")
            events = list(stream.events())
        lines = [e for e in events if e.event == EventKind.LOG and "slept" in e.data["line"]]
        assert len(lines) >= 2 and events[-1].data["status"] == RunStatus.SUCCEEDED
        assert events[-1].received - lines[0].received > 1.5, "nginx buffered the stream"
    finally:
        server.stop()
        worker.kill_group()


def _call(method: str, url: str,
          body: object = None) -> tuple[int, dict[str, str], object, float]:
    """Status, headers, JSON body and seconds taken of a request."""
    started = time.monotonic()
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, headers, got = resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        status, headers, got = exc.code, dict(exc.headers), json.loads(exc.read())
    return status, headers, got, time.monotonic() - started


def _metric(text: str, name: str, workflow: str) -> float:
    """The value of `name{workflow="<workflow>"}` in Prometheus text, 0 when absent."""
    for line in text.splitlines():
        if line.startswith(f'{name}{{workflow="{workflow}"}} '):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_held_requests_are_served_by_a_pool_of_their_own(config):
    """nginx sends event streams and `?wait=` to the threaded gunicorn and the rest to the
    sync one (2 processes, one request each): more streams and waits than the sync pool has
    processes are all held (a sync process refuses to hold them: 503, or an answer at once),
    and meanwhile /healthz, a trigger and a read answer at once. Both pools count into one
    metrics directory: /metrics (the sync pool's) has the admission a wait (threaded) made."""
    front = Front(dict(config, TEST_RUN_STREAM_KEEPALIVE="1",
                       TEST_RUN_MAX_STREAMS_PER_CLIENT="4")).wait_ready()
    socks: list[socket.socket] = []
    try:
        _, run = request("POST", front.url + "/api/workflows/echo/test-runs", {"input": {}})
        path = f"/api/test-runs/{run['run_id']}/events"  # queued (no worker): streams stay open
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", front.port), timeout=10)
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            socks.append(sock)
            assert sock.recv(64).split(b" ")[1] == b"200"
        waited: list[tuple[int, dict[str, str], object, float]] = []
        waits = [threading.Thread(target=lambda: waited.append(_call(
            "GET", f"{front.url}/api/test-runs/{run['run_id']}?wait=3"))) for _ in range(2)]
        trigger_wait = threading.Thread(target=lambda: waited.append(_call(
            "POST", front.url + "/api/workflows/sleep/test-runs?wait=3",
            {"input": {"seconds": 1}})))
        held = [*waits, trigger_wait]
        for thread in held:
            thread.start()
        rounds = 0
        while any(thread.is_alive() for thread in held):  # each wait holds ~3 s
            for method, url, body, expected in (
                    ("GET", front.url + "/healthz", None, {200}),
                    ("POST", front.url + "/api/workflows/fail/test-runs", {"input": {}},
                     {202, 409}),
                    ("GET", f"{front.url}/api/test-runs/{run['run_id']}", None, {200})):
                status, seconds, answer = timed(method, url, body)
                assert status in expected and seconds < WITHIN_S, (url, status, seconds, answer)
            rounds += 1
        for thread in held:
            thread.join(30)
        assert rounds >= 3, rounds
        assert len(waited) == 3
        for status, headers, _body, seconds in waited:
            # held for the whole wait, not answered at once by a process that cannot hold
            assert status in (200, 202) and seconds > 2.5 and "Retry-After" not in headers, \
                (status, headers, seconds)
        status, _, text, _ = _get_text(front.url + "/metrics")
        assert status == 200 and _metric(text, "testrun_admissions_total", "sleep") == 1
    finally:
        for sock in socks:
            sock.close()
        front.stop()


def _get_text(url: str) -> tuple[int, dict[str, str], str, float]:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, dict(resp.headers), resp.read().decode(), time.monotonic() - started


def test_a_wait_that_slips_past_the_routing_is_answered_at_once(front):
    """nginx's $arg_wait does not decode a name spelled in percent-escapes, so such a wait
    reaches the sync pool, which werkzeug decodes it for: a process that serves one request
    at a time answers it at once, as when every waiter is taken (the run as it is, with
    Retry-After), rather than be held by it; a stream reaching a sync worker would be 503."""
    _, run = request("POST", front.url + "/api/workflows/echo/test-runs?on_conflict=queue",
                     {"input": {}})
    status, headers, body, seconds = _call("GET",
                                           f"{front.url}/api/test-runs/{run['run_id']}?%77ait=5")
    assert (status, seconds < WITHIN_S) == (200, True), (status, seconds, body)
    assert headers.get("Retry-After") and body["run_id"] == run["run_id"]  # type: ignore[index]


@pytest.mark.parametrize("raw, status, code", [
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, "uri_too_long"),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 414, "uri_too_long"),
    (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 431,
     "headers_too_large"),
    (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"".join(
        b"x%d: y\r\n" % i for i in range(150)) + b"\r\n", 431, "headers_too_large"),
    (b"GET /healthz HTTP/1.1\r\n\r\n", 400, "invalid_request"),
    (b"get /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "invalid_request"),
    (b"AB /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "invalid_request"),
    (b"GET /healthz HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 400, "invalid_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: a\x01b\r\n\r\n", 400,
     "invalid_request"),
    (b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400,
     "invalid_request"),
    (b"POST /api/workflows/echo/test-runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
     b"application/json\r\nContent-Length: 2000000\r\n\r\n", 413, "payload_too_large"),
    (b"GET /_front/400 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 404, "not_found"),
])
def test_what_the_server_refuses_before_the_app_is_the_apis_json(front, raw, status, code):
    """nginx's own refusals, and gunicorn's behind it, were HTML pages (and `make prove` met
    gunicorn's 414, a status the contract did not declare)."""
    answer = send_raw(front.port, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert int(head.split(b" ")[1]) == status, answer[:300]
    assert b"content-type: application/json" in head.lower(), head
    assert json.loads(body)["error"] == code


def send_raw(port: int, data: bytes) -> bytes:
    """`data` as sent, and what comes back until the server closes (or resets, having
    answered: nginx resets a connection whose body it would not read)."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
                if _complete(got):
                    break
        except ConnectionResetError:
            pass
        return got


def _complete(got: bytes) -> bool:
    head, sep, body = got.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def test_the_front_refuses_an_open_bind_without_a_token(config):
    server = Front(config, host="0.0.0.0")
    assert server.wait_exit(30) == 2
    assert "refusing to listen on 0.0.0.0" in server.log()


def test_the_front_stops_as_one_process_and_leaves_nothing(config):
    server = Front(config).wait_ready()
    children = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                for pid in server.children()}
    binds = [arg for argv in children.values() for arg in argv if arg.startswith(b"unix:")]
    (run_dir,) = {Path(bind[5:].decode()).parent for bind in binds}
    assert run_dir.is_dir() and (run_dir.stat().st_mode & 0o777) == 0o700
    assert len(binds) == 2 and len(children) == 3  # the two gunicorns' masters and nginx's
    assert server.stop() == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    assert not run_dir.exists()
    assert timed("GET", server.url + "/healthz")[0] == 0


def test_when_gunicorn_dies_the_front_stops_too(config):
    server = Front(config).wait_ready()
    try:
        gunicorn = next(pid for pid in server.children()
                        if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes())
        os.kill(gunicorn, signal.SIGKILL)
        assert server.wait_exit(30) != 0
        assert "web: gunicorn (" in server.log() and ") exited (" in server.log()
    finally:
        server.kill_group()


def test_only_the_fronts_forwarded_for_is_believed(config):
    """Over TCP the peer is the client and its X-Forwarded-For is anyone's to write; over the
    private socket (no peer address) the peer is nginx, which wrote it. The rate limit counts
    the address believed (429 comes before 409 in the order of checks)."""
    client = create_app(dict(config, TRIGGER_RATE_LIMIT="1/minute")).test_client()

    def trigger(peer: str, forwarded: str) -> int:
        return client.post("/api/workflows/echo/test-runs", environ_base={"REMOTE_ADDR": peer},
                           headers={"X-Forwarded-For": forwarded}).status_code

    assert trigger("10.0.0.1", "10.0.0.9") == 202
    assert trigger("10.0.0.1", "10.0.0.8") == 429  # still 10.0.0.1: its header is ignored
    assert trigger("", "10.0.0.7") == 409          # from the front: 10.0.0.7, not limited
    assert trigger("", "10.0.0.2, 10.0.0.1") == 429  # the last hop is the one nginx wrote
