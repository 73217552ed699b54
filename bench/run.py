"""`make bench` (`python -m bench.run`): one table, every figure a ratio against a baseline
measured in the same run, on a private redis-server that is both broker and tracking Redis (the
fused path). These machines are shared and noisy: rounds are interleaved and figures are
medians. `--quick` is a smoke run (about a minute); `--markdown FILE` also writes the table.

    make bench                      # the full run (about 10 minutes on 2 cores)
    python -m bench.run --quick     # the smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devtools.redis_server import RedisServer, free_port  # noqa: E402


def log(line: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×" if base else "n/a"


def machine() -> str:
    load = os.getloadavg()
    return (f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: short and small")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["http", "cpu", "split", "pool", "cluster", "e2e",
                                 "flatness", "sweep", "memory"])
    args = parser.parse_args(argv)
    quick = args.quick
    rounds = 1 if quick else 3
    seconds = 2 if quick else 6
    workflows_n = 20_000 if quick else 100_000
    records = 100_000 if quick else 1_000_000
    triggers = 2_000 if quick else 100_000

    from .procs import ensure_wrk
    if "http" not in args.skip or "memory" not in args.skip:
        ensure_wrk()
    server = RedisServer().start()
    name = f"bench-{uuid.uuid4().hex[:6]}"
    env = {"REDIS_URL": server.url, "TEST_RUN_KEY_PREFIX": name, "TEST_RUN_QUEUE": name,
           "WORKFLOW_MODULES": "bench.workflows", "BENCH_WORKFLOWS": str(workflows_n),
           "BENCH_REDIS_URL": server.url, "BENCH_QUEUE": name,
           # a bench client address is not a person: no rate limit, no token
           "TRIGGER_RATE_LIMIT": "", "API_TOKEN": "", "API_TOKENS": ""}
    os.environ.update(env)
    client = server.client()
    # the bench's own process drives the service in-process: its per-run lines would flood the
    # table's terminal (gunicorn's workers keep theirs, in their log files: a real cost)
    import logging
    logging.getLogger("worker.lifecycle").setLevel(logging.WARNING)

    def flush() -> None:
        client.flushall()

    started = datetime.now(UTC)
    rows = _Rows()
    notes: list[str] = [machine() + " at the start"]
    try:
        from . import e2e, http, inprocess
        from .procs import Gunicorn, wrk

        config = {k: v for k, v in env.items() if v}
        if "http" not in args.skip:
            log(f"HTTP: {len(http.APPS)} apps × {rounds} round(s) × {seconds}s, admit + conflict")
            figures = http.run(env, flush, rounds=rounds, seconds=seconds, log=log)
            for label, fig in figures["admit"].items():
                rows.append((f"HTTP admitted req/s: {label}",
                             f"{fig.rps:.0f}/s, p50 {fig.p50_ms:.1f} ms, p99 {fig.p99_ms:.1f} ms",
                             f"{fig.ratio:.2f}× bare; {fig.vs_limit:.2f}× the limit"))
            for label, fig in figures["conflict"].items():
                rows.append((f"HTTP conflicts req/s (one workflow): {label}",
                             f"{fig.rps:.0f}/s, p99 {fig.p99_ms:.1f} ms",
                             f"{fig.ratio:.2f}× bare; {fig.vs_limit:.2f}× the limit"))
            peers = max(figures["conflict"][p].ratio for p in http.PEERS)
            for label in (x for x in http.SERVED if x in figures["admit"]):
                fig = figures["admit"][label]
                rows.append((f"admitted p99 vs bare's p99 (paired turns): {label}",
                             f"{fig.p99_ms:.1f} ms", f"{fig.p99_ratio:.2f}×"))
                rows.append((f"conflicts vs the faster peer's: {label}",
                             f"{figures['conflict'][label].rps:.0f}/s",
                             ratio(figures["conflict"][label].ratio, peers)))
        if "cpu" not in args.skip:
            from . import cpu
            log("where a request's CPU goes under wrk: the limit vs this service (sync)")
            assert server.proc is not None  # started above
            spent = cpu.run(env, flush, server.proc.pid, rounds=rounds, seconds=seconds, log=log)
            for mode, what in (("admit", "admission"), ("conflict", "conflict")):
                ours, limit = spent[mode][http.SERVICE], spent[mode][http.LIMIT]
                rows.append((f"CPU µs per {what} under wrk (web workers, Redis, wrk; the whole "
                             "machine): this service (sync); the limit",
                             "; ".join(", ".join(f"{by[p]:.0f}" for p in cpu.PARTS)
                                       for by in (ours, limit)),
                             "beyond the limit's: " + ", ".join(
                                 f"{p} {ours[p] - limit[p]:+.0f}" for p in cpu.PARTS)))
        if "split" not in args.skip:
            log("in-process: one admission's parts")
            parts = inprocess.split(config, flush, 300 if quick else 2000)
            bare = parts["bare send_task (kombu publish)"]
            for label, us in parts.items():
                rows.append((f"in-process µs: {label}", f"{us:.0f} µs", ratio(us, bare)))
            log("in-process: where a conflict goes (WSGI calls, Redis' INFO commandstats)")
            c = inprocess.conflict_split(config, flush, client, 300 if quick else 3000)
            log("in-process: where an admission goes (the same, a free slot each call)")
            a = inprocess.admission_split(config, flush, client, 300 if quick else 3000)
            for kind, split in (("conflict", c), ("admission", a)):
                _split_rows(rows, kind, split)
            flush()
            p50, p99 = inprocess.unavailable(config, f"redis://127.0.0.1:{free_port()}/0",
                                             100 if quick else 300)
            rows.append(("503 with the broker down (two-step path), p50 / p99",
                         f"{p50:.1f} / {p99:.1f} ms", "target p99 < 200 ms"))
        if "pool" not in args.skip:
            log("in a pool process: one run through Celery's tracer vs a bare no-op task")
            flush()
            import json
            import subprocess

            from .procs import env as proc_env
            out = subprocess.run([sys.executable, "-m", "bench.pool", "300" if quick else "2000"],
                                 env=proc_env(env), cwd=ROOT, capture_output=True, text=True,
                                 check=True, timeout=600).stdout
            pool = json.loads(out.strip().splitlines()[-1])
            rows.append(("in a pool process, µs per task (Celery's tracer): a run of a "
                         "workflow run again; a bare no-op task",
                         f"{pool['run wall']:.0f} µs (CPU {pool['run cpu']:.0f}); "
                         f"{pool['bare wall']:.0f} µs (CPU {pool['bare cpu']:.0f})",
                         f"{ratio(pool['run wall'], pool['bare wall'])} (CPU "
                         f"{ratio(pool['run cpu'], pool['bare cpu'])})"))
            rows.append(("in a pool process, µs per task: a workflow's first run in that "
                         "process; a bare no-op task",
                         f"{pool['first wall']:.0f} µs (CPU {pool['first cpu']:.0f}); "
                         f"{pool['first bare wall']:.0f} µs (CPU {pool['first bare cpu']:.0f})",
                         f"{ratio(pool['first wall'], pool['first bare wall'])} (CPU "
                         f"{ratio(pool['first cpu'], pool['first bare cpu'])})"))
        if "cluster" not in args.skip:
            log("admission through a Redis Cluster (two-step) vs the fused path")
            from . import cluster
            paths = cluster.triggers(config, flush, 200 if quick else 1000, rounds)
            for label, us in paths.items():
                rows.append((f"in-process µs, service.trigger: {label}", f"{us:.0f} µs",
                             ratio(us, paths[cluster.FUSED])))
        if "e2e" not in args.skip:
            log("end to end: echo runs vs a bare no-op task through a 2-process prefork worker")
            flush()
            from worker.client.service import TestRunService
            from worker.core.celery_app import create_celery
            from worker.core.settings import Settings

            service = TestRunService(create_celery(Settings.from_env(overrides=config),
                                                   fail_fast=True))
            result = e2e.run(env, service, client, n=200 if quick else 1000,
                             rounds=rounds, log=log)
            rows.append(("end-to-end runs/s: no-op workflows run again vs bare no-op task",
                         f"{result['echo']:.0f} vs {result['bare']:.0f}/s",
                         f"{result['echo_ratio']:.2f}×"))
            rows.append(("end-to-end runs/s: workflows never run before vs bare no-op task",
                         f"{result['fresh']:.0f} vs {result['bare']:.0f}/s",
                         f"{result['fresh_ratio']:.2f}×"))
            rows.append(("slot release latency (body end → slot free), p50 / p99",
                         f"{result['release_p50_ms']:.1f} / {result['release_p99_ms']:.1f} ms",
                         "target p99 < 20 ms"))
        if "flatness" not in args.skip:
            log("flatness: admission cost vs workflows and retained records")
            flat = inprocess.flatness(config, flush, client, 300 if quick else 2000, records, log)
            for label in (f"{workflows_n:,} workflows", f"{records:,} retained records"):
                us, empty = flat[label], flat[f"{label}: empty"]
                rows.append((f"flatness, admission µs: {label}; an empty Redis, call by call "
                             "in between", f"{us:.0f} µs; {empty:.0f} µs", ratio(us, empty)))
            notes.append(f"flatness: {int(flat['dbsize']):,} keys in Redis at the largest fill")
            for label, size in inprocess.redis_bytes(config, flush, client).items():
                rows.append((f"Redis bytes per {label}", f"{size:.0f} B", ""))
        if "sweep" not in args.skip:
            log(f"a heartbeat's sweeps over {workflows_n:,} workflows")
            flush()
            from . import sweep
            beats = sweep.run(config, 3 if quick else 7)
            asked, each = beats["asked first"], beats["a call each"]
            rows.append((f"a worker heartbeat's sweeps over {workflows_n:,} workflows, ms a "
                         "beat: which have work asked first; a call per workflow (as before)",
                         f"{asked[0]:.0f} (CPU {asked[1]:.0f}); {each[0]:.0f} (CPU {each[1]:.0f})",
                         f"{ratio(asked[0], each[0])} (CPU {ratio(asked[1], each[1])})"))
        if "memory" not in args.skip:
            log(f"web RSS and connections over {triggers:,} triggers")
            flush()
            # the Procfile's pool of short requests, which triggers reach (web/front.py)
            web = Gunicorn("web:create_app()", env, worker_class="sync")
            try:
                wrk(web.url, 1, dict(env, BENCH_MODE="spread"))
                flush()
                before = web.rss_kib()
                admitted, offset = 0, 0
                deadline = time.monotonic() + (120 if quick else 480)
                while admitted < triggers and time.monotonic() < deadline:
                    got = wrk(web.url, 5, dict(env, BENCH_MODE="spread",
                                               BENCH_OFFSET=str(offset)))
                    admitted += got.requests - got.non_2xx
                    offset += got.requests
                    client.delete(name)  # the queued messages (no worker consumes)
                after = web.rss_kib()
                connections = len(client.client_list()) - 1  # less our own
                rows.append((f"web RSS (2 sync workers, the Procfile's trigger pool) after "
                             f"{admitted:,} triggers",
                             f"{before / 1024:.1f} → {after / 1024:.1f} MiB",
                             ratio(after, before)))
                rows.append(("open Redis connections from the web after them",
                             f"{connections}", "2 workers"))
            finally:
                web.stop()
    finally:
        server.stop()

    notes.append(machine() + " at the end")
    notes.append(f"run {started:%Y-%m-%d %H:%M} UTC, {'--quick' if quick else 'full'}; "
                 f"{rounds} round(s), each turn {seconds}s of wrk -t2 -c16 paired with a turn of "
                 "bare apply_async just before it; HTTP ratios are medians of the pairs' ratios")
    table = render(rows, notes)
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    return 0


def _split_rows(rows: list[tuple[str, str, str]], kind: str, c: dict[str, float]) -> None:
    """The rows of inprocess.conflict_split or admission_split (`kind`)."""
    from .inprocess import OFF as off  # imported once the environment is set (main)
    for who, label in (("floor", "the floor (Flask answering 202)"),
                       ("limit", f"the limit's {kind} (one EVALSHA)"),
                       ("ours", f"this service's {kind} (the fast path)"),
                       (off, f"this service's {kind}, TEST_RUN_FAST_PATH=false")):
        rows.append((f"in-process µs per call (WSGI): {label}",
                     f"{c[who + ' wall']:.0f} µs (CPU {c[who + ' cpu']:.0f} µs)",
                     ratio(c[who + " wall"], c["limit wall"]) + " the limit"))
    rows.append((f"Redis' time per {kind} (INFO commandstats): ours; ours, Flask; the limit's",
                 f"{c['redis ours']:.1f} µs; {c['redis ' + off]:.1f} µs; "
                 f"{c['redis limit']:.1f} µs", ""))
    rows.append((f"one round trip (the limit's {kind} − the floor − its Redis time)",
                 f"{c['round trip']:.0f} µs", ""))
    rows.append((f"Python per {kind} (ours − Redis' time − one round trip): the fast path; "
                 "TEST_RUN_FAST_PATH=false", f"{c['python']:.0f} µs; {c['python, ' + off]:.0f} µs",
                 "target ≤ 150 µs" if kind == "conflict" else ""))
    rows.append((f"CPU per {kind} beyond the limit's (this process): the fast path; "
                 "TEST_RUN_FAST_PATH=false",
                 f"{c['ours cpu'] - c['limit cpu']:.0f} µs; "
                 f"{c[off + ' cpu'] - c['limit cpu']:.0f} µs",
                 ratio(c["ours cpu"], c["limit cpu"])))


class _Rows(list[tuple[str, str, str]]):
    """The table's rows; each is logged as it is measured, so a stopped run still told it."""

    def append(self, row: tuple[str, str, str]) -> None:
        log(" | ".join(row))
        super().append(row)


def render(rows: list[tuple[str, str, str]], notes: list[str]) -> str:
    lines = ["| figure | measured | ratio |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines)




if __name__ == "__main__":
    sys.exit(main())
