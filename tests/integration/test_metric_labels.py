"""No metric label comes from the client: 1,000 requests with made-up methods and paths, from
a stranger with no token, grow the request histogram by at most a constant number of series,
on a real gunicorn in multiprocess mode. (300 made-up methods grew /metrics from 4.2 KB to
542 KB, the multiprocess directory to 1.18 MB and a web worker by 15 MB: `method` was labelled
as sent, and every 401 and 405 added a series.)"""

from __future__ import annotations

import http.client
import random
import string
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.procs import Gunicorn
from web.metrics import KNOWN_METHODS, OTHER_METHOD, UNMATCHED

HISTOGRAM = "testrun_http_request_duration_seconds"
REQUESTS = 1000


def series(url: str) -> set[frozenset[tuple[str, str]]]:
    """The label sets of the request histogram's series."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {frozenset(s.labels.items()) for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == HISTOGRAM + "_count"}


def made_up_request(rng: random.Random) -> tuple[str, str]:
    method = rng.choice(sorted(KNOWN_METHODS)) if rng.random() < 0.3 else "".join(
        rng.choices(string.ascii_uppercase, k=rng.randint(3, 12)))
    segments = ["api", "test-runs", "workflows", "echo", "events", "logs", "cancel", "..",
                "%00", "%ff", "x" * rng.randint(1, 40), "echo-" + "0" * 32]
    path = "/" + "/".join(rng.choices(segments, k=rng.randint(0, 5)))
    if rng.random() < 0.3:
        path += "?" + "".join(rng.choices(string.ascii_letters + "=&", k=rng.randint(1, 20)))
    return method, path


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def dir_bytes(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir())


@pytest.fixture
def web(config):
    server = Gunicorn(dict(config, API_TOKENS="ci:tok-ci-123"), workers=1, threads=4)
    yield server.wait_ready()
    server.kill_group()


def test_made_up_methods_and_paths_add_at_most_a_constant_number_of_series(web, capsys):
    rng = random.Random(20)
    connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    for _ in range(20):  # a few ordinary requests first: the series they add are the baseline
        connection.request("GET", "/healthz")
        connection.getresponse().read()
    before, size_before = series(web.url), dir_bytes(web.metrics_dir)
    (worker,) = web.children()
    rss_before = rss_kib(worker)
    statuses = set()
    for _ in range(REQUESTS):
        method, path = made_up_request(rng)
        try:
            connection.request(method, path, headers={"Content-Length": "0"})
            response = connection.getresponse()
            response.read()
            statuses.add(response.status)
        except (http.client.HTTPException, OSError):
            connection.close()  # a request gunicorn refused with its connection
            connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=10)
    after = series(web.url)
    grown, rss_after, size_after = after - before, rss_kib(worker), dir_bytes(web.metrics_dir)
    with capsys.disabled():
        print(f"\n  {REQUESTS} made-up requests: series {len(before)} → {len(after)}, "
              f"multiprocess dir {size_before} → {size_after} bytes, "
              f"worker RSS {rss_before} → {rss_after} KiB, statuses {sorted(statuses)}")
    labels = {k: {dict(s)[k] for s in after} for k in ("method", "route")}
    assert labels["method"] <= KNOWN_METHODS | {OTHER_METHOD}
    assert labels["route"] <= {r.rule for r in _app().url_map.iter_rules()} | {UNMATCHED}
    # the routes × methods × statuses a stranger can reach: bounded however many requests
    assert len(grown) <= 40, sorted(map(sorted, grown))
    assert size_after - size_before < 200_000


def _app():
    from web import create_app
    return create_app({"TEST_RUN_KEY_PREFIX": "labels-only"})
