"""HTTP admission and conflict throughput through gunicorn, with wrk, side by side.

Every app runs under the same gunicorn settings (gunicorn.conf.py; sync workers, 2 of them,
unless it is the Procfile's gthread line) at once, idle between turns; rounds are interleaved
(each round runs every app, in a rotated order) and the figures are medians over the rounds.
Before every turn the bench's private Redis is flushed, so no app finds another's slots, locks
or queue. No worker consumes: this is the cost of admitting, not of running."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from .procs import Gunicorn, WrkResult, wrk

#: label → (WSGI app, worker class, threads)
APPS: dict[str, tuple[str, str, int]] = {
    "bare apply_async, no result backend": ("bench.apps:create('bare')", "sync", 1),
    "bare apply_async, Redis result backend": ("bench.apps:create('backend')", "sync", 1),
    "celery-singleton 0.3.1": ("bench.apps:create('singleton')", "sync", 1),
    "celery_once 3.0.1": ("bench.apps:create('once')", "sync", 1),
    "this service (sync)": ("web:create_app()", "sync", 1),
    "this service (gthread, as the Procfile)": ("web:create_app()", "gthread", 8),
}
BASELINE = "bare apply_async, no result backend"
SERVICE = "this service (sync)"


@dataclass(frozen=True)
class Figure:
    rps: float  # answered requests per second (admitted: 2xx only)
    p50_ms: float
    p99_ms: float
    non_2xx: int


def run(env: dict[str, str], flush: Callable[[], None], *, rounds: int, seconds: float,
        log: Callable[[str], None]) -> dict[str, dict[str, Figure]]:
    """{"admit"|"conflict": {app label: median Figure}}."""
    servers = {label: Gunicorn(spec, env, worker_class=kind, threads=threads)
               for label, (spec, kind, threads) in APPS.items()}
    samples: dict[str, dict[str, list[WrkResult]]] = {"admit": {}, "conflict": {}}
    try:
        labels = list(servers)
        for label in labels:  # warm every app: connections, script load, imports
            flush()
            wrk(servers[label].url, 1, dict(env, BENCH_MODE="spread"))
        for r in range(rounds):
            order = labels[r % len(labels):] + labels[:r % len(labels)]
            for label in order:
                for mode in ("admit", "conflict"):
                    flush()
                    wrk_env = dict(env, BENCH_MODE="spread" if mode == "admit" else "one",
                                   BENCH_OFFSET=str(r * 7919))
                    result = wrk(servers[label].url, seconds, wrk_env)
                    samples[mode].setdefault(label, []).append(result)
                    log(f"round {r + 1}/{rounds} {mode:8} {label}: "
                        f"{result.ok_per_s if mode == 'admit' else result.requests_per_s:.0f}"
                        f"/s p99 {result.p99_ms:.1f} ms non-2xx {result.non_2xx}")
    finally:
        for server in servers.values():
            server.stop()
    out: dict[str, dict[str, Figure]] = {}
    for mode, by_app in samples.items():
        out[mode] = {}
        for label, results in by_app.items():
            rate = [x.ok_per_s if mode == "admit" else x.requests_per_s for x in results]
            out[mode][label] = Figure(statistics.median(rate),
                                      statistics.median(x.p50_ms for x in results),
                                      statistics.median(x.p99_ms for x in results),
                                      int(statistics.median(x.non_2xx for x in results)))
    return out
