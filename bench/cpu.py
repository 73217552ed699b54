"""Where a request's CPU goes under wrk, by process: the limit (one EVALSHA) against this
service, both on gunicorn sync 2 as in bench/http.py, turns alternated. Each turn reads the CPU
time (user + system, /proc) of gunicorn's workers, of the bench's redis-server and of wrk
itself, and the whole machine's busy time (/proc/stat: every process, interrupts, the kernel's
network work), and divides each by the requests answered: µs of CPU per request. The HTTP rows
say how far our throughput is from the limit's; this says which process spends the difference
(in-process figures leave out the HTTP server, wrk and the kernel)."""

from __future__ import annotations

import os
import resource
import statistics
from collections.abc import Callable
from pathlib import Path

from .http import APPS, LIMIT, SERVICE, drive, warm
from .procs import Gunicorn

_TICK_S = 1 / os.sysconf("SC_CLK_TCK")
PARTS = ("web", "redis", "wrk", "machine")


def _proc_cpu_s(pid: int) -> float:
    """A process's user + system CPU seconds (its threads included), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * _TICK_S  # utime, stime


def _machine_busy_s() -> float:
    """Every CPU's busy time since boot (all but idle and iowait), in seconds."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in cpu[:8])
    return (user + nice + system + irq + softirq + steal) * _TICK_S


def _wrk_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk: the child reaped in the turn
    return usage.ru_utime + usage.ru_stime


def run(env: dict[str, str], flush: Callable[[], None], redis_pid: int, *, rounds: int,
        seconds: float, log: Callable[[str], None]) -> dict[str, dict[str, dict[str, float]]]:
    """{"admit"|"conflict": {label: {part: median µs of CPU per answered request}}}."""
    servers = {label: Gunicorn(APPS[label][0] or "", env) for label in (LIMIT, SERVICE)}
    got: dict[str, dict[str, dict[str, list[float]]]] = {
        mode: {label: {part: [] for part in PARTS} for label in servers}
        for mode in ("admit", "conflict")}

    def turn(label: str, mode: str, r: int) -> None:
        flush()
        server = servers[label]
        workers = server.children()
        before = ([_proc_cpu_s(p) for p in workers], _proc_cpu_s(redis_pid), _wrk_cpu_s(),
                  _machine_busy_s())
        result = drive(server.url, env, seconds, mode, r)
        spent = {"web": sum(_proc_cpu_s(p) for p in workers) - sum(before[0]),
                 "redis": _proc_cpu_s(redis_pid) - before[1], "wrk": _wrk_cpu_s() - before[2],
                 "machine": _machine_busy_s() - before[3]}
        for part, s in spent.items():
            got[mode][label][part].append(s / max(1, result.requests) * 1e6)
        log(f"cpu round {r + 1}/{rounds} {mode:8} {label}: {result.requests_per_s:.0f}/s, p99 "
            f"{result.p99_ms:.1f} ms; µs per request "
            + ", ".join(f"{p} {v[-1]:.0f}" for p, v in got[mode][label].items()))

    try:
        warm((server.url for server in servers.values()), env, flush)
        for r in range(rounds):
            for mode in ("admit", "conflict"):
                for label in (servers if r % 2 == 0 else reversed(list(servers))):
                    turn(label, mode, r)
    finally:
        for server in servers.values():
            server.stop()
    return {mode: {label: {part: statistics.median(v) for part, v in parts.items()}
                   for label, parts in by_label.items()} for mode, by_label in got.items()}
