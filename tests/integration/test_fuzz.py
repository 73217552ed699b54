"""Raw requests a stranger might send, fuzzed against the web as deployed (the Procfile's front:
nginx before gunicorn): random methods, paths, query values, header names and bytes, JSON bodies
of any depth and any number. Every answer must be an answer — a status below 500, and for an
error the API's JSON with a stable `error` and a `message` — and afterwards no slot may be held
by anything but a live run, and the web must still answer.

FUZZ_REQUESTS requests (300 in `make test`, 3,000 in `make prove`), from the seed FUZZ_SEED
(printed; a failure names the request). The contract test (test_contract.py) fuzzes what the
OpenAPI document describes; this fuzzes what it does not: bytes no client library would send.
"""

from __future__ import annotations

import json
import os
import random
import socket
import string

import pytest

from tests.support.http import request
from tests.support.procs import Front
from worker.core.status import RunStatus

REQUESTS = int(os.environ.get("FUZZ_REQUESTS", "300"))
SEED = int(os.environ.get("FUZZ_SEED", "2026"))
METHODS = ["GET", "POST", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]
#: answers whose body is not a JSON object: the page, its files, the metrics, an event stream
NOT_JSON = ("text/html", "text/css", "text/javascript", "application/javascript",
            "text/plain", "text/event-stream", "image/")


class Fuzz:
    """One random request at a time, as bytes."""

    def __init__(self, rng: random.Random, port: int, ended_run: str) -> None:
        self.rng, self.port, self.ended_run = rng, port, ended_run

    def text(self, alphabet: str, most: int) -> str:
        return "".join(self.rng.choices(alphabet, k=self.rng.randint(0, most)))

    def noise(self, most: int) -> bytes:
        return bytes(self.rng.randint(0, 255) for _ in range(self.rng.randint(0, most)))

    def method(self) -> bytes:
        pick = self.rng.random()
        if pick < 0.6:
            return self.rng.choice(METHODS).encode()
        if pick < 0.85:
            return self.text(string.ascii_uppercase, 25).encode() or b"X"
        return self.text(string.ascii_letters + string.punctuation, 12).encode() or b"g"

    def path(self) -> str:
        workflow = self.rng.choice(["echo", "sleep", "nope", "-bad", "a" * 200,
                                    self.text(string.printable, 20)])
        run = self.rng.choice([self.ended_run, "echo-" + "0" * 32, "x",
                               self.text(string.printable, 40)])
        path = self.rng.choice([
            f"/api/workflows/{workflow}/test-runs", f"/api/workflows/{workflow}",
            "/api/workflows", f"/api/test-runs/{run}", f"/api/test-runs/{run}/logs",
            f"/api/test-runs/{run}/cancel", f"/api/test-runs/{self.ended_run}/events",
            "/healthz", "/readyz", "/metrics", "/openapi.json", "/", "/static/app.js",
            "/" + self.text(string.printable, 30)])
        path = "".join(c if c.isalnum() or c in "/-._~" else f"%{ord(c):02X}" for c in path)
        if self.rng.random() < 0.5:
            path += "?" + "&".join(f"{k}={v}" for k, v in self.query().items())
        return path

    def query(self) -> dict[str, str]:
        values = ["0", "1", "-1", "100", "1000", "1001", str(2 ** 63 - 1), str(10 ** 30), "1e3",
                  "nan", "", "%C2%B2", "full", "summary", "replace", "reject", "%00"]
        names = ["limit", "offset", "fields", "on_conflict", "wait", self.text("abc", 5)]
        return {self.rng.choice(names): self.rng.choice(values)
                for _ in range(self.rng.randint(1, 4))}

    def body(self) -> bytes:
        pick = self.rng.random()
        if pick < 0.15:
            return self.noise(200)
        depth = self.rng.choice([1, 2, 5, 31, 32, 33, 100, 254, 255, 256, 1000])
        leaf = self.rng.choice(["1e999", "-1e999", "NaN", "Infinity", "-0", "1e-400",
                                "9" * 5000, '"\\ud800"', '"\\ud83d\\ude00"', '"x"', "null",
                                "[]", "{}", "12345678901234567890"])
        inner = '{"a": ' * (depth - 1) + leaf + "}" * (depth - 1) if depth > 1 else leaf
        if self.rng.random() < 0.2:
            inner = "[" * depth + "]" * depth
        return self.rng.choice([f'{{"input": {inner}}}', inner,
                                f'{{"input": {{}}, "{self.text("xyz", 3)}": 1}}']).encode()

    def headers(self, body: bytes) -> list[tuple[bytes, bytes]]:
        host = self.rng.choice([f"127.0.0.1:{self.port}"] * 18 + ["evil.example", ""])
        found = [(b"Host", host.encode())] if host else []
        optional = [
            (b"Content-Type", self.rng.choice([b"application/json", b"text/plain",
                                               b"application/x-www-form-urlencoded",
                                               self.noise(20)])),
            (b"Idempotency-Key", self.noise(40)),
            (b"Last-Event-ID", self.rng.choice([b"1-0", "²-0".encode(), b"\xb2-0",
                                                b"99999999999999999999-0", self.noise(30)])),
            (b"Authorization", b"Bearer " + self.noise(30)),
            (b"X-Forwarded-For", self.noise(20)),
            (b"Sec-Fetch-Site", self.rng.choice([b"cross-site", b"same-site", b"none"])),
            (b"Origin", self.noise(20)),
            (self.text(string.ascii_letters + "-_", 20).encode() or b"X", self.noise(60)),
            (self.noise(10) or b"Y", b"1"),
        ]
        found += self.rng.sample(optional, min(len(optional), int(self.rng.expovariate(0.7))))
        if body or self.rng.random() < 0.5:
            found.append((b"Content-Length", str(len(body)).encode()))
        return found + [(b"Connection", b"close")]

    def trigger(self) -> tuple[bytes, bytes, bytes, list[tuple[bytes, bytes]]]:
        """A trigger that gets past the HTTP server and the media type: what reaches the body's
        parse, the depth and number checks, the admission."""
        workflow = self.rng.choice(["echo", "echo", "sleep", "nope"])
        query = "" if self.rng.random() < 0.5 else "?" + "&".join(
            f"{k}={v}" for k, v in self.query().items())
        body = self.body() if self.rng.random() < 0.8 else b""
        headers = [(b"Host", f"127.0.0.1:{self.port}".encode()),
                   (b"Content-Type", b"application/json"),
                   (b"Content-Length", str(len(body)).encode())]
        if self.rng.random() < 0.3:
            headers.append((b"Idempotency-Key", self.noise(30)))
        return b"POST", f"/api/workflows/{workflow}/test-runs{query}".encode(), body, \
            headers + [(b"Connection", b"close")]

    def request(self) -> bytes:
        if self.rng.random() < 0.3:
            method, path, body, headers = self.trigger()
        else:
            method, path = self.method(), self.path().encode()
            body = self.body() if method in (b"POST", b"PUT", b"PATCH") or \
                self.rng.random() < 0.1 else b""
            headers = self.headers(body)
        # any byte but CR and LF: a bare LF ends the headers for nginx, and what followed
        # would be a second (pipelined) request, with an answer of its own
        head = b"".join(_line(name) + b": " + _line(value) + b"\r\n" for name, value in headers)
        return method + b" " + path + b" HTTP/1.1\r\n" + head + b"\r\n" + body


def _line(raw: bytes) -> bytes:
    return raw.replace(b"\r", b"").replace(b"\n", b"") or b"x"


def exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(data)
        got = b""
        try:
            while chunk := sock.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass  # nginx resets a connection whose body it would not read, after answering
        return got


def check(answer: bytes, sent: bytes) -> int:
    """The answer's status, after checking it is one: below 500, JSON for an error."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 "), (answer[:200], sent[:300])
    status = int(lines[0].split(b" ")[1])
    assert status < 500, (answer[:500], sent[:300])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
    content_type = headers.get(b"content-type", b"").decode()
    if sent.startswith(b"HEAD ") or status in (204, 304):
        return status
    if status >= 400 or not content_type.startswith(NOT_JSON):
        assert content_type == "application/json", (answer[:500], sent[:300])
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            return status  # a JSON answer streamed: not an error's
        try:
            payload = json.loads(body)
        except ValueError:
            raise AssertionError(f"not JSON: {answer[:600]!r} for {sent[:300]!r}") from None
        if status >= 400:
            assert isinstance(payload.get("error"), str) and payload["error"], payload
            assert isinstance(payload.get("message"), str) and payload["message"], payload
    return status


@pytest.fixture
def front(config):
    server = Front(dict(config, TRIGGER_RATE_LIMIT="100000/minute")).wait_ready()
    yield server
    server.stop()


def test_no_request_a_stranger_sends_gets_anything_but_an_answer(front, capsys):
    _, run = request("POST", front.url + "/api/workflows/echo/test-runs", {"input": {}})
    assert request("POST", f"{front.url}/api/test-runs/{run['run_id']}/cancel")[0] == 202
    fuzz = Fuzz(random.Random(SEED), front.port, run["run_id"])
    statuses: dict[int, int] = {}
    for _ in range(REQUESTS):
        sent = fuzz.request()
        status = check(exchange(front.port, sent), sent)
        statuses[status] = statuses.get(status, 0) + 1
    with capsys.disabled():
        print(f"\n  {REQUESTS} fuzzed requests (seed {SEED}): "
              + ", ".join(f"{s}×{n}" for s, n in sorted(statuses.items())))
    # still answering, and no slot is held by anything but a live run
    assert request("GET", front.url + "/healthz")[0] == 200
    status, workflows = request("GET", front.url + "/api/workflows")
    assert status == 200
    for workflow in workflows["workflows"]:
        if workflow["active_run_id"]:
            _, held = request("GET", f"{front.url}/api/test-runs/{workflow['active_run_id']}")
            assert not RunStatus(held["status"]).terminal, held
