"""The trigger's fast path (web/fast.py) answers as Flask does, and leaves Flask the rest.

A corpus of requests is sent to the same app built twice on one Redis prefix —
TEST_RUN_FAST_PATH on, and off — each time from the same Redis state (the prefix emptied, the
case's set-up made again). Compared: the status, every header (name, value, order), the body,
the metric series each answer moved, the log lines it wrote and what it left in Redis (each
key's type and size: the slot, the records, the queue, the rate limit's window). Run ids and
timestamps differ between any two runs and are compared by shape; a Retry-After may differ by
the second that passed between the two. Each case also says which path must answer it: a
request Flask answered carries Flask's own request object in its environ
(`werkzeug.request`, an ApiRequest), one the fast path answered carries its mark and not that.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import redis
from flask import Flask

from devtools.redis_server import free_port
from tests.support.api import delete_prefix, store_of
from web import ApiRequest, create_app
from web.fast import ANSWERED
from web.schemas import MAX_BODY_BYTES
from worker.core import metrics as worker_metrics

TRIGGER = "/api/workflows/{}/test-runs"
TOKENS = "alice:tok-a:trigger,reader:tok-r:read"
#: the app variants the corpus needs (over the test's config)
VARIANTS: dict[str, dict[str, str]] = {
    "plain": {},
    "tokens": {"API_TOKENS": TOKENS},
    "rate": {"TRIGGER_RATE_LIMIT": "2/minute"},
    "small_input": {"TEST_RUN_MAX_INPUT_BYTES": "64"},
}


@dataclass(frozen=True)
class Case:
    name: str
    #: "fast": the fast path must answer it; "flask": it must go to Flask
    path_taken: str
    workflow: str = "echo"
    body: bytes | None = b"{}"
    query: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = "application/json"
    method: str = "POST"
    variant: str = "plain"
    environ: dict[str, Any] = field(default_factory=dict)
    #: made before each of the two sends, on the app about to answer
    setup: Callable[[Flask, dict[str, str]], None] | None = None
    url: str | None = None


def hold(input: dict[str, Any] | None = None) -> Callable[[Flask, dict[str, str]], None]:
    """The echo workflow's slot held by a queued run (with `input`)."""
    def setup(app: Flask, config: dict[str, str]) -> None:
        app.extensions["testruns"].trigger("echo", input or {})
    return setup


def hold_running(app: Flask, config: dict[str, str]) -> None:
    run = app.extensions["testruns"].trigger("echo", {}).run
    store_of(config).start(run.run_id, "w@test")


def idempotent(body: dict[str, Any]) -> Callable[[Flask, dict[str, str]], None]:
    def setup(app: Flask, config: dict[str, str]) -> None:
        app.extensions["testruns"].trigger("echo", body, idempotency_key="k-1")
    return setup


def rate_spent(app: Flask, config: dict[str, str]) -> None:
    for workflow in ("say", "chatty"):  # this caller's two of 2/minute
        app.extensions["testruns"].trigger(workflow, {}, rate_key="addr:127.0.0.1")


JSON = "application/json"
BIG = json.dumps({"input": {"x": "y" * MAX_BODY_BYTES}}).encode()
DEEP = ('{"input":' + '{"a":' * 120 + "1" + "}" * 121).encode()

CORPUS = [
    # answered by the fast path
    Case("admission", "fast"),
    Case("admission with an input", "fast", body=b'{"input": {"hello": "world"}}'),
    Case("admission, empty body", "fast", body=b"", environ={"CONTENT_LENGTH": "0"}),
    Case("admission, on_conflict=reject free slot", "fast", query="on_conflict=reject"),
    Case("conflict, reject (default)", "fast", setup=hold()),
    Case("conflict, reject explicit", "fast", query="on_conflict=reject", setup=hold()),
    Case("conflict, running holder", "fast", setup=hold_running),
    Case("conflict, queue", "fast", query="on_conflict=queue", setup=hold()),
    Case("conflict, join same input", "fast", query="on_conflict=join", setup=hold()),
    Case("conflict, join other input", "fast", query="on_conflict=join",
         body=b'{"input": {"other": 1}}', setup=hold()),
    Case("idempotency, first", "fast", headers={"Idempotency-Key": "k-1"}),
    Case("idempotency, repeat", "fast", headers={"Idempotency-Key": "k-1"},
         setup=idempotent({})),
    Case("idempotency, reused with another body", "fast", headers={"Idempotency-Key": "k-1"},
         body=b'{"input": {"n": 2}}', setup=idempotent({"n": 1})),
    Case("idempotency key too long", "fast", headers={"Idempotency-Key": "k" * 300}),
    Case("bad JSON", "fast", body=b'{"input": '),
    Case("not UTF-8", "fast", body=b'{"input": "\xff"}'),
    Case("NaN", "fast", body=b'{"input": {"x": NaN}}'),
    Case("non-object body", "fast", body=b"[1, 2]"),
    Case("non-object input", "fast", body=b'{"input": 5}'),
    Case("unknown field", "fast", body=b'{"inptu": {}}'),
    Case("nested too deep", "fast", body=DEEP),
    Case("input too large", "fast", variant="small_input",
         body=json.dumps({"input": {"x": "y" * 100}}).encode()),
    Case("unknown workflow", "fast", workflow="no-such-workflow"),
    Case("input does not fit the schema", "fast", workflow="sleep",
         body=b'{"input": {"seconds": "soon"}}'),
    Case("callback_url without WEBHOOK_SECRET", "fast",
         body=b'{"callback_url": "https://example.com/hook"}'),
    Case("callback_url too long", "fast",
         body=json.dumps({"callback_url": "https://e.com/" + "a" * 3000}).encode()),
    Case("behind the front (X-Forwarded-For)", "fast", variant="rate",
         environ={"REMOTE_ADDR": ""}, headers={"X-Forwarded-For": "10.1.2.3"}),
    Case("token missing", "fast", variant="tokens"),
    Case("token wrong", "fast", variant="tokens", headers={"Authorization": "Bearer nope"}),
    Case("token not bearer", "fast", variant="tokens", headers={"Authorization": "Basic tok-a"}),
    Case("token right", "fast", variant="tokens", headers={"Authorization": "Bearer tok-a"}),
    Case("token right, conflict", "fast", variant="tokens", setup=hold(),
         headers={"Authorization": "Bearer tok-a"}),
    Case("token without the trigger scope", "fast", variant="tokens",
         headers={"Authorization": "Bearer tok-r"}),
    Case("rate limited", "fast", variant="rate", setup=rate_spent),
    Case("rate limit counted", "fast", variant="rate"),
    # handed to Flask
    Case("?wait=", "flask", query="wait=0.1"),
    Case("?on_conflict=replace", "flask", query="on_conflict=replace", setup=hold()),
    Case("?on_conflict=bogus", "flask", query="on_conflict=bogus"),
    Case("an unknown parameter", "flask", query="on_conflict=reject&x=1", setup=hold()),
    Case("a query spelled otherwise", "flask", query="on_conflict=%72eject", setup=hold()),
    Case("Origin", "flask", headers={"Origin": "http://elsewhere.example"}),
    Case("Sec-Fetch-Site cross-site", "flask", headers={"Sec-Fetch-Site": "cross-site"}),
    Case("Sec-Fetch-Site same-origin, conflict", "flask", setup=hold(),
         headers={"Sec-Fetch-Site": "same-origin"}),
    Case("text/plain", "flask", content_type="text/plain"),
    Case("JSON with a charset", "flask", content_type="application/json; charset=utf-8"),
    Case("merge-patch+json", "flask", content_type="application/merge-patch+json"),
    Case("no type, no body", "flask", content_type=None, body=None),
    Case("no Content-Length", "flask", body=None, environ={"wsgi.input": io.BytesIO(b"{}")}),
    Case("a transfer coding", "flask", headers={"Transfer-Encoding": "chunked"}),
    Case("oversize body", "flask", body=BIG),
    Case("body shorter than its Content-Length", "flask", environ={"CONTENT_LENGTH": "10"}),
    Case("wrong Host", "flask", headers={"Host": "rebinding.example"}),
    Case("wrong Host, token wrong", "flask", variant="tokens",
         headers={"Host": "rebinding.example", "Authorization": "Bearer nope"}),
    Case("a workflow id outside the pattern", "flask", workflow="-dash"),
    Case("a path segment more", "flask", url="/api/workflows/echo/test-runs/x"),
    Case("a trailing slash", "flask", url="/api/workflows/echo/test-runs/"),
    Case("double slash", "flask", url="/api//workflows/echo/test-runs"),
    Case("GET", "flask", method="GET", body=None, content_type=None),
    Case("PUT", "flask", method="PUT"),
    Case("a script root", "flask", environ={"SCRIPT_NAME": "/svc"}, setup=hold()),
]

_HEX = re.compile(r"[0-9a-f]{32}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_NUMBER = re.compile(r"\b\d+(\.\d+)?\b")
#: what differs between any two sends of one request: ids, timestamps; compared by shape
VOLATILE = ("Retry-After", "Content-Length")


def shape(text: str) -> str:
    return _TIME.sub("<time>", _HEX.sub("<hex>", text))


@dataclass
class Answer:
    status: str  # the status line's, reason phrase included
    headers: list[tuple[str, str]]
    body: Any
    retry: list[int]
    metrics: dict[str, float]
    logs: list[str]
    redis: list[tuple[str, str, int]]
    taken: str


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {shape(record.getMessage())}")


def recorded(app: Flask) -> Flask:
    """The app with its WSGI calls' environs kept (`app.seen`): the test client hands the app
    a copy of the environ it shows, and what the app's layers wrote is in that copy."""
    inner = app.wsgi_app
    seen: list[dict[str, Any]] = []

    def wsgi(environ: dict[str, Any], start_response: Any) -> Any:
        seen.append(environ)
        return inner(environ, start_response)

    app.wsgi_app = wsgi  # type: ignore[method-assign]
    app.seen = seen  # type: ignore[attr-defined]
    return app


def flask_answered(environ: dict[str, Any]) -> bool:
    """Whether Flask made a request of this environ: the test client puts its own (werkzeug's
    Request) under `werkzeug.request`; Flask's request context replaces it by an ApiRequest
    and sets it to None when it is popped."""
    found = environ.get("werkzeug.request")
    return found is None or isinstance(found, ApiRequest)


def built(config: dict[str, str], fast: bool) -> Flask:
    return recorded(create_app(dict(config, TEST_RUN_FAST_PATH=str(fast).lower())))


@pytest.fixture
def apps(config: dict[str, str]) -> Iterator[dict[str, dict[str, Flask]]]:
    yield {variant: {path: built(dict(config, **extra), path == "fast")
                     for path in ("fast", "flask")}
           for variant, extra in VARIANTS.items()}


def counts() -> dict[str, float]:
    """Every counter's and histogram's count, by series (not the latencies themselves)."""
    out = {}
    for metric in worker_metrics.metrics().registry.collect():
        for sample in metric.samples:
            if sample.name.endswith(("_total", "_count")):
                out[f"{sample.name}{sorted(sample.labels.items())}"] = sample.value
    return out


def redis_state(client: redis.Redis, config: dict[str, str]) -> list[tuple[str, str, int]]:
    """Each key's name (by shape), type and size, sorted."""
    prefix = config["TEST_RUN_KEY_PREFIX"]
    out = []
    for key in list(client.scan_iter(match=f"{prefix}*", count=1000)):
        kind = client.type(key)
        size = {"hash": client.hlen, "list": client.llen, "zset": client.zcard,
                "stream": client.xlen, "set": client.scard}.get(kind, lambda k: 1)(key)
        out.append((shape(key), kind, size))
    return sorted(out)


def send(app: Flask, case: Case, config: dict[str, str], client: redis.Redis) -> Answer:
    delete_prefix(client, config["TEST_RUN_KEY_PREFIX"])
    if case.setup is not None:
        case.setup(app, config)
    before = counts()
    lines = Lines()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(lines)
    root.setLevel(logging.DEBUG)
    try:
        kwargs: dict[str, Any] = {"method": case.method, "query_string": case.query,
                                  "headers": case.headers, "environ_overrides": case.environ}
        if case.body is not None:
            kwargs["data"] = case.body
        if case.content_type is not None:
            kwargs["content_type"] = case.content_type
        resp = app.test_client().open(case.url or TRIGGER.format(case.workflow), **kwargs)
        body = resp.get_data()
    finally:
        root.removeHandler(lines)
        root.setLevel(old_level)
    after = counts()
    environ = app.seen[-1]  # type: ignore[attr-defined]
    flask_ran, fast_ran = flask_answered(environ), environ.get(ANSWERED) is True
    assert flask_ran != fast_ran, (case.name, flask_ran, fast_ran)
    parsed: Any = json.loads(shape(body.decode())) if resp.is_json else shape(body.decode())
    retry = [int(v) for k, v in resp.headers.items() if k == "Retry-After"]
    if isinstance(parsed, dict) and "retry_after" in parsed:
        retry.append(parsed.pop("retry_after"))
    return Answer(
        resp.status,
        [(k, "<volatile>" if k in VOLATILE else shape(v)) for k, v in resp.headers.items()],
        parsed, retry,
        {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)},
        lines.lines, redis_state(client, config), "fast" if fast_ran else "flask")


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_the_fast_path_answers_as_flask_does(case: Case, apps, config, redis_client):
    pair = apps[case.variant]
    fast = send(pair["fast"], case, config, redis_client)
    slow = send(pair["flask"], case, config, redis_client)
    assert slow.taken == "flask", "the app with TEST_RUN_FAST_PATH=false answered without Flask"
    assert fast.taken == case.path_taken, f"{case.name}: answered by {fast.taken}"
    same(fast, slow)


def same(fast: Answer, slow: Answer) -> None:
    assert all(abs(a - b) <= 1 for a, b in zip(fast.retry, slow.retry, strict=True))
    assert replace(fast, retry=[], taken="") == replace(slow, retry=[], taken="")


def test_a_redis_outage_answers_503_the_same(config: dict[str, str], redis_client):
    """Redis unreachable: 503 queue_unavailable, counted by what (the metrics' 503 branch)."""
    dead = dict(config, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                TEST_RUN_TRACKING_URL=f"redis://127.0.0.1:{free_port()}/0")
    case = Case("Redis down", "fast")
    answers = [send(built(dead, on), case, config, redis_client) for on in (True, False)]
    assert answers[0].status.startswith("503 ") and answers[0].taken == "fast"
    assert answers[1].taken == "flask"
    same(*answers)


def test_a_hook_it_does_not_stand_in_for_turns_it_off(config: dict[str, str], caplog):
    """A before_request added to the app (here, one a test adds) is not skipped: the fast
    path sees it at its first request, says so, and Flask answers every request."""
    app = built(config, True)
    seen: list[str] = []
    app.before_request(lambda: seen.append("hook") and None)
    with caplog.at_level(logging.WARNING, logger="web.fast"):
        resp = app.test_client().post(TRIGGER.format("echo"), json={})
    assert resp.status_code == 202 and seen == ["hook"]
    assert ANSWERED not in app.seen[-1]  # type: ignore[attr-defined]
    assert flask_answered(app.seen[-1])  # type: ignore[attr-defined]
    assert "fast path is off" in caplog.text and "before_request" in caplog.text


def test_another_route_under_its_path_turns_it_off(config: dict[str, str], caplog):
    """A POST route added under /api/workflows/ (one the fast path could take for a trigger):
    the fast path steps aside, and the route answers."""
    app = built(config, True)
    app.add_url_rule("/api/workflows/special/test-runs", "special", lambda: ("special", 201),
                     methods=["POST"])
    with caplog.at_level(logging.WARNING, logger="web.fast"):
        resp = app.test_client().post(TRIGGER.format("special"), json={})
    assert resp.status_code == 201 and resp.get_data() == b"special"
    assert "route /api/workflows/special/test-runs" in caplog.text
