"""GET /metrics: Prometheus text for the web — every gunicorn worker's counts added up
(multiprocess mode: gunicorn.conf.py sets the directory up and marks dead workers), the lifecycle
counters (worker/core/metrics.py), the 503s by what was unreachable, request latency by route and
status, and the live gauges read from Redis.

Open like /healthz: it holds counts, no run data. Not in the OpenAPI document (it is not JSON).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.registry import CollectorRegistry

from worker.core import metrics as worker_metrics
from worker.core.gauges import LiveState

from .api import service

logger = logging.getLogger(__name__)
_lock = threading.Lock()
#: the methods counted by name; any other (a client may send any token) counts as `other`
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED = "unmatched"
_web: WebMetrics | None = None
_REGISTRY = "testruns.metrics_registry"


class WebMetrics:
    """The web's own metrics (beside the lifecycle's, which both processes count).

    No label value comes from the client: the route is the matched rule's pattern (or
    `unmatched`), the method one of KNOWN_METHODS (or `other`) and the status one the app
    answered, so the series are bounded by the routes × methods × statuses the app has, however
    many made-up methods and paths a stranger sends. Each series' histogram child is bound
    once and kept, so counting a request costs a dict lookup."""

    def __init__(self) -> None:
        r = worker_metrics.metrics().registry
        self.unavailable = Counter("testrun_unavailable", "Answers 503, by what was unreachable "
                                   "(redis, broker) or too_many_streams", ["what"], registry=r)
        for what in ("redis", "broker"):  # at 0: an alert's rate() sees the first 503
            self.unavailable.labels(what)
        self.latency = Histogram("testrun_http_request_duration_seconds", "Request latency by "
                                 "route (its pattern), method and status",
                                 ["route", "method", "status"], registry=r)
        self._timers: dict[tuple[str, str, int], Any] = {}

    def timer(self, route: str, method: str, status: int) -> Any:
        """The latency histogram's child for these labels, bound on first use."""
        key = (route, method, status)
        found = self._timers.get(key)
        if found is None:
            found = self._timers[key] = self.latency.labels(route, method, str(status))
        return found


def web_metrics() -> WebMetrics:
    global _web
    if _web is None:
        with _lock:
            if _web is None:
                _web = WebMetrics()
    return _web


def _started() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    rule = request.url_rule
    return observe(rule.rule if rule is not None else UNMATCHED, request.method, response,
                   g.pop("metrics_started", None))


def observe(route: str, method: str, response: Response, started: float | None) -> Response:
    """Count an answer of `route` (its pattern, or UNMATCHED) started at `started`
    (perf_counter; None: not timed): Flask's after-request hook. Counting never breaks an
    answer."""
    if started is not None:
        count(route, method, response.status_code, started,
              lambda: response.get_json(silent=True) if response.is_json else None)
    return response


def count(route: str, method: str, status: int, started: float,
          body: Callable[[], Any]) -> None:
    """`observe` of an answer not made a Response (the trigger's fast path: web/fast.py);
    `body` gives its JSON body, read only for a 503's `what`."""
    try:
        m = web_metrics()
        m.timer(route, method if method in KNOWN_METHODS else OTHER_METHOD,
                status).observe(time.perf_counter() - started)
        if status == 503:
            found = body()
            what = (found or {}).get("what") or (found or {}).get("error") or "unknown"
            m.unavailable.labels(str(what)).inc()
    except Exception:  # noqa: BLE001 - counting never breaks an answer
        logger.exception("could not count a request in the metrics")


def metrics_endpoint() -> Response:
    """Prometheus text: the counts of every process of this web, and the live gauges."""
    registry: CollectorRegistry | None = current_app.extensions.get(_REGISTRY)
    if registry is None:
        live = LiveState(service().live_state)
        registry = current_app.extensions[_REGISTRY] = worker_metrics.scrape_registry(live)
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def register(app: Flask) -> None:
    worker_metrics.subscribe()
    web_metrics()
    # first, so a request refused by an earlier hook (401, 400 host) is timed too
    app.before_request_funcs.setdefault(None, []).insert(0, _started)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", metrics_endpoint, methods=["GET"])
