"""Real processes for tests: Celery prefork workers and gunicorn (private redis-servers are
devtools.redis_server.RedisServer).

Everything listens on a free loopback port and is killed at teardown. Readiness is polled
with a deadline, never slept for.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from devtools.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TEST_WORKFLOWS = "worker.workflows.examples,tests.support.workflows"


def wait_for(predicate: Callable[[], Any], timeout: float, what: str,
             interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def holds_throughout(predicate: Callable[[], Any], seconds: float, what: str,
                     interval: float = 0.1) -> None:
    """Assert that `predicate` stays true for `seconds`: a check of an invariant over a window
    (e.g. a lease that must survive a shutdown), not a wait for something to happen."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), f"{what} stopped holding"
        time.sleep(interval)


def kill_all(procs: dict[Any, subprocess.Popen]) -> None:
    """SIGKILL every server a fixture started (a Redis Cluster's nodes, sentinels) and reap
    each, bounded: a test's servers never outlive it."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    procs.clear()


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has stopped executing, whoever reaps it)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except OSError:
        return False


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("WORKFLOW_MODULES", TEST_WORKFLOWS)
    env.update(extra)
    return env


class Proc:
    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        # a metrics directory of its own, removed with it (a SIGKILLed process cannot)
        self.name = name
        self.metrics_dir = tempfile.mkdtemp(prefix=f"{name}-metrics-")
        # (over whatever this pytest process inherited or set up for itself: an in-process
        # worker's set-up writes PROMETHEUS_MULTIPROC_DIR into os.environ, and processes that
        # shared it would add up each other's counts)
        env = {**env, "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        env.pop("TESTRUNS_METRICS_DIR_OWNED", None)
        self.log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log")[1])
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def children(self) -> list[int]:
        try:
            raw = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in raw.split()]

    def kill_group(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)


class Worker(Proc):
    """`celery -A worker worker` with the prefork pool, on its own queue and key prefix."""

    def __init__(self, env: Mapping[str, str], concurrency: int = 2,
                 name: str | None = None) -> None:
        self.name = name or f"w{uuid.uuid4().hex[:8]}"
        self.hostname = f"{self.name}@test"
        full_env = base_env(env)
        # the exporter's default port (9809) would be shared by every worker a test starts
        full_env.setdefault("WORKER_METRICS_PORT", str(free_port()))
        self.metrics_url = f"http://127.0.0.1:{full_env['WORKER_METRICS_PORT']}/metrics"
        argv = [str(BIN / "celery"), "-A", "worker", "worker", "--pool", "prefork",
                "--concurrency", str(concurrency), "-E", "--without-gossip",
                "--without-mingle", "--queues", ",".join(
                    q for q in (full_env["TEST_RUN_QUEUE"], full_env.get("WEBHOOK_QUEUE")) if q),
                "--hostname", self.hostname, "--loglevel", "INFO"]
        super().__init__(argv, full_env, self.name)

    def wait_ready(self, timeout: float = 30) -> Worker:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"worker exited early:\n{self.log()}")
            return " ready." in self.log()

        try:
            wait_for(ready, timeout, f"worker {self.hostname} to be ready")
        except BaseException:
            self.kill_group()  # never leave a half-started worker consuming
            raise
        return self


class Gunicorn(Proc):
    """gunicorn alone (gunicorn.conf.py), on a free port: the app as the Procfile's front
    (`Front`) reaches it behind nginx."""

    def __init__(self, env: Mapping[str, str], workers: int = 2, threads: int = 8,
                 host: str = "127.0.0.1") -> None:
        """`host`: the address to bind (the tests always connect through loopback)."""
        self.port = free_port()
        argv = [str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "web:create_app()",
                "--bind", f"{host}:{self.port}", "--workers", str(workers),
                "--threads", str(threads)]
        super().__init__(argv, base_env(env), "gunicorn")
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> Gunicorn:
        wait_healthy(self, self.url, timeout)
        return self


def wait_healthy(proc: Proc, url: str, timeout: float) -> None:
    """Until `url`/healthz answers 200; the process is killed if it does not in time."""
    import urllib.request

    def ready() -> bool:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited early:\n{proc.log()}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        wait_for(ready, timeout, f"{proc.name} to answer")
    except BaseException:
        proc.kill_group()
        raise


def procfile() -> dict[str, str]:
    """The Procfile's command of each process."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if ": " in line)


class Front(Proc):
    """The web as the Procfile's web line starts it (web/front.py): nginx on WEB_BIND, a free
    port, in front of its two gunicorns (gunicorn.conf.py as it is) on private sockets. Skips,
    saying why, where nginx is missing (`make test` installs it as root)."""

    def __init__(self, env: Mapping[str, str], host: str = "127.0.0.1") -> None:
        from web.front import find_nginx

        if find_nginx() is None:
            import pytest
            pytest.skip("no nginx for the web's front: `make test` installs it as root "
                        "(apt-get install nginx)")
        self.port = free_port()
        full = base_env({**env, "WEB_BIND": f"{host}:{self.port}",
                         "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"})
        super().__init__(["sh", "-c", "exec " + procfile()["web"]], full, "front")
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> Front:
        wait_healthy(self, self.url, timeout)
        return self

    def stop(self, timeout: float = 20) -> int:
        """SIGTERM, as honcho stops it, and its exit status."""
        self.signal(signal.SIGTERM)
        try:
            return self.wait_exit(timeout)
        finally:
            self.kill_group()


class Flower(Proc):
    """`celery -A worker flower --conf=flowerconfig.py`, as the Procfile runs it, on a free
    port with the given basic-auth credentials."""

    def __init__(self, env: Mapping[str, str], auth: str = "ops:secret") -> None:
        self.port = free_port()
        full_env = base_env({**env, "FLOWER_PORT": str(self.port), "FLOWER_BASIC_AUTH": auth})
        argv = [str(BIN / "celery"), "-A", "worker", "flower", "--conf=flowerconfig.py"]
        super().__init__(argv, full_env, "flower")
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> Flower:
        import urllib.request

        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"flower exited early:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthcheck", timeout=1) as resp:
                    return resp.status == 200
            except OSError:
                return False

        try:
            wait_for(ready, timeout, "flower to answer")
        except BaseException:
            self.kill_group()
            raise
        return self
