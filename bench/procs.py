"""Processes the bench starts (gunicorn, the Procfile's front, a prefork worker, wrk), each on a
free loopback port, each killed with its process group when done (gunicorn and the front asked
to stop first, so they remove what they made). Readiness is polled with a deadline."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devtools.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def env(extra: Mapping[str, str]) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = str(ROOT) + os.pathsep + out.get("PYTHONPATH", "")
    out.update(extra)
    return out


class Proc:
    def __init__(self, argv: list[str], extra_env: Mapping[str, str], name: str) -> None:
        self.log_path = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, env=env(extra_env), cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def children(self) -> list[int]:
        try:
            raw = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in raw.split()]

    #: SIGTERM first, and up to 30 s to exit, before the group is killed: gunicorn and the
    #: front remove what they made (a metrics directory, the front's private one) only then
    graceful = False

    def stop(self) -> None:
        if self.graceful and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self._log.close()
        self.log_path.unlink(missing_ok=True)

    def wait(self, ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{what} exited early:\n{self.log_path.read_text()[-3000:]}")
            if ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")


class Gunicorn(Proc):
    """gunicorn with the project's gunicorn.conf.py (as the Procfile starts it); `app` is a
    WSGI app spec, `worker_class` sync or gthread."""

    graceful = True

    def __init__(self, app: str, extra_env: Mapping[str, str], *, worker_class: str = "sync",
                 workers: int = 2, threads: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), app,
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers),
                "--worker-class", worker_class, "--threads", str(threads)]
        super().__init__(argv, extra_env, "gunicorn")
        self.wait(self._answers, f"gunicorn {app}")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url + "/nothing-here", timeout=1)
        except urllib.error.HTTPError:
            return len(self.children()) > 0
        except OSError:
            return False
        return True

    def rss_kib(self) -> int:
        total = 0
        for pid in self.children():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total


class Front(Proc):
    """The Procfile's web line, `python -m web.front`: nginx on a free port before its two
    gunicorns (gunicorn.conf.py) on private sockets. `app_pool`: the arguments the pool of
    short requests gets instead of web/front.py's POOLS["app"] (`[]`: gunicorn.conf.py's
    gthread 2 × 12, the Procfile's web before stop 29), to measure another class behind the
    same nginx."""

    graceful = True

    def __init__(self, extra_env: Mapping[str, str], *,
                 app_pool: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        extra = dict(extra_env, WEB_BIND=f"127.0.0.1:{self.port}")
        argv = [sys.executable, "-m", "web.front"]
        if app_pool is not None:
            argv = [sys.executable, "-c", "import sys, web.front as f; "
                    f"f.POOLS['app'] = {app_pool!r}; sys.exit(f.main())"]
        super().__init__(argv, extra, "front")
        self.wait(self._answers, "the front (nginx → gunicorn)")

    def _answers(self) -> bool:
        """/healthz through nginx: 200 once a gunicorn worker answers (nginx says 503 before)."""
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as got:
                return got.status == 200
        except OSError:
            return False


def has_nginx() -> bool:
    """Whether the front can start (`make bench` installs Debian's nginx as root)."""
    from web.front import find_nginx
    return find_nginx() is not None


class Worker(Proc):
    """A Celery prefork worker (`celery -A <app> worker`) on the bench's queue."""

    def __init__(self, app: str, extra_env: Mapping[str, str], queue: str,
                 concurrency: int = 2) -> None:
        argv = [str(BIN / "celery"), "-A", app, "worker", "--pool", "prefork",
                "--concurrency", str(concurrency), "-E", "--without-gossip", "--without-mingle",
                "--queues", queue, "--hostname", f"bench-{os.getpid()}@%h", "--loglevel",
                "INFO"]  # as the Procfile runs it
        super().__init__(argv, extra_env, "worker")
        self.wait(lambda: " ready." in self.log_path.read_text(errors="replace"),
                  "the celery worker")


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    non_2xx: int
    requests: int
    p50_ms: float
    p99_ms: float
    seconds: float

    @property
    def ok_per_s(self) -> float:
        return self.requests_per_s * (self.requests - self.non_2xx) / max(1, self.requests)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, seconds: float, extra_env: Mapping[str, str], threads: int = 2,
        connections: int = 16) -> WrkResult:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
            "-s", str(ROOT / "bench" / "trigger.lua"), url]
    out = subprocess.run(argv, env=env(extra_env), capture_output=True, text=True, check=True,
                         timeout=seconds + 60).stdout

    def latency(q: str) -> float:
        found = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(found.group(1)) * _UNITS[found.group(2)] if found else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not (rps and total):
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return WrkResult(float(rps.group(1)), int(non_2xx.group(1)) if non_2xx else 0,
                     int(total.group(1)), latency("50"), latency("99"), seconds)


def ensure_wrk() -> None:
    """wrk from Debian; installed when missing and we are root."""
    if subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True).returncode == 0:
        return
    if os.geteuid() != 0:
        raise SystemExit("make bench needs wrk (Debian: apt-get install wrk)")
    print("bench: installing wrk (Debian)", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,
                   stdout=subprocess.DEVNULL)
    if subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       stdout=subprocess.DEVNULL)
