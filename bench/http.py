"""HTTP admission and conflict throughput through gunicorn, with wrk, side by side.

Every app runs under the same gunicorn settings (gunicorn.conf.py; sync workers, 2 of them,
unless the row says otherwise), all started up front and idle between turns; this service also
behind nginx as the Procfile serves it (web/front.py: triggers on a sync pool), and the same
front with that pool on gthread 2 × 12 as before — how the Procfile's class is chosen
(docs/BENCHMARKS.md, the server's choice). These
machines are shared, and their load swings within seconds, so every turn of an app is *paired*
with a turn of the baseline (bare apply_async, no result backend) just before it: the ratio of
each pair is taken, and the figure is the median over the rounds (the order of the apps rotates
each round). Before every turn the bench's private Redis is flushed, so no app finds another's
slots, locks or queue. No worker consumes: this is the cost of admitting, not of running."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .procs import Front, Gunicorn, WrkResult, has_nginx, wrk

#: label → (WSGI app, worker class, threads); None: the Procfile's front (nginx → gunicorn)
#: serving the app, its pool of short requests with that class (sync: as the Procfile)
APPS: dict[str, tuple[str | None, str, int]] = {
    "the floor: Flask answering 202, touching nothing": ("bench.apps:create('floor')", "sync", 1),
    "the limit: the same Flask doing one EVALSHA": ("bench.apps:create('limit')", "sync", 1),
    "bare apply_async, no result backend": ("bench.apps:create('bare')", "sync", 1),
    "bare apply_async, Redis result backend": ("bench.apps:create('backend')", "sync", 1),
    "celery-singleton 0.3.1": ("bench.apps:create('singleton')", "sync", 1),
    "celery_once 3.0.1": ("bench.apps:create('once')", "sync", 1),
    "this service (sync)": ("web:create_app()", "sync", 1),
    "this service (gthread 2 × 12, gunicorn alone)": ("web:create_app()", "gthread", 12),
    "this service (the Procfile: nginx → gunicorn sync 2)": (None, "sync", 1),
    "this service (nginx → gunicorn gthread 2 × 12, the Procfile before)": (None, "gthread", 12),
}
BASELINE = "bare apply_async, no result backend"
SERVICE = "this service (sync)"
GTHREAD = "this service (gthread 2 × 12, gunicorn alone)"
FRONT = "this service (the Procfile: nginx → gunicorn sync 2)"
FRONT_GTHREAD = "this service (nginx → gunicorn gthread 2 × 12, the Procfile before)"
#: this service's rows that get their p99 and peer ratios
SERVED = (SERVICE, GTHREAD, FRONT, FRONT_GTHREAD)
LIMIT = "the limit: the same Flask doing one EVALSHA"
PEERS = ("celery-singleton 0.3.1", "celery_once 3.0.1")


@dataclass(frozen=True)
class Figure:
    rps: float  # median answered requests per second (admitted: 2xx only)
    ratio: float  # median of (this turn / the baseline's admission turn just before it)
    p50_ms: float
    p99_ms: float
    p99_ratio: float  # median of (this turn's p99 / the paired baseline turn's p99)
    #: median over rounds of (this turn's ratio / the limit's ratio, same mode, same round)
    vs_limit: float = float("nan")


def _rate(result: WrkResult, mode: str) -> float:
    return result.ok_per_s if mode == "admit" else result.requests_per_s


def drive(url: str, env: dict[str, str], seconds: float, mode: str, r: int = 0) -> WrkResult:
    """One wrk turn at `url`: admissions spread over the workflows (round `r` from its own
    offset), or conflicts on one workflow."""
    return wrk(url, seconds, dict(env, BENCH_MODE="spread" if mode == "admit" else "one",
                                  BENCH_OFFSET=str(r * 7919)))


def warm(urls: Iterable[str], env: dict[str, str], flush: Callable[[], None]) -> None:
    """A second of admissions at each app: its connections, script loads and imports."""
    for url in urls:
        flush()
        drive(url, env, 1, "admit")


def run(env: dict[str, str], flush: Callable[[], None], *, rounds: int, seconds: float,
        log: Callable[[str], None]) -> dict[str, dict[str, Figure]]:
    """{"admit"|"conflict": {app label: Figure}}; every ratio is against the baseline's
    *admission* throughput (bare Celery has no conflict to answer)."""
    fronted = has_nginx()
    if not fronted:
        log("no nginx (Debian's `nginx`; `make bench` installs it as root): the front's rows "
            "are left out")
    servers: dict[str, Gunicorn | Front] = {
        label: Gunicorn(spec, env, worker_class=kind, threads=threads) if spec else
        Front(env, app_pool=None if kind == "sync" else [])
        for label, (spec, kind, threads) in APPS.items() if spec or fronted}
    pairs: dict[str, dict[str, list[tuple[WrkResult, WrkResult]]]] = {"admit": {},
                                                                       "conflict": {}}

    def turn(label: str, mode: str, r: int) -> WrkResult:
        flush()
        return drive(servers[label].url, env, seconds, mode, r)

    try:
        labels = list(servers)
        warm((servers[label].url for label in labels), env, flush)
        for r in range(rounds):
            order = labels[r % len(labels):] + labels[:r % len(labels)]
            for label in order:
                for mode in ("admit", "conflict"):
                    base = turn(BASELINE, "admit", r)
                    result = base if (label, mode) == (BASELINE, "admit") else turn(label, mode, r)
                    pairs[mode].setdefault(label, []).append((base, result))
                    log(f"round {r + 1}/{rounds} {mode:8} {label}: {_rate(result, mode):.0f}/s "
                        f"vs bare {base.ok_per_s:.0f}/s, p99 {result.p99_ms:.1f} ms, "
                        f"non-2xx {result.non_2xx}")
    finally:
        for server in servers.values():
            server.stop()
    out: dict[str, dict[str, Figure]] = {}
    for mode, by_app in pairs.items():
        out[mode] = {}
        limit = [_rate(x, mode) / max(b.ok_per_s, 1e-9) for b, x in by_app.get(LIMIT, [])]
        for label, got in by_app.items():
            ratios = [_rate(x, mode) / max(b.ok_per_s, 1e-9) for b, x in got]
            out[mode][label] = Figure(
                statistics.median(_rate(x, mode) for _, x in got),
                statistics.median(ratios),
                statistics.median(x.p50_ms for _, x in got),
                statistics.median(x.p99_ms for _, x in got),
                statistics.median(x.p99_ms / max(b.p99_ms, 1e-9) for b, x in got),
                statistics.median(r / max(lim, 1e-9) for r, lim in zip(ratios, limit,
                                                                        strict=True))
                if len(limit) == len(ratios) else float("nan"))
    return out
