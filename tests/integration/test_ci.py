"""CI's entry point starts RabbitMQ on a machine where none answers: `.ci/rabbitmq` (called by
`.ci/run`) runs inside a network namespace of its own — so 127.0.0.1:5672 there is not the
machine's own RabbitMQ, which other engineers use and this test never stops — with a second
node name and data and log directories of its own. It must start Debian's rabbitmq-server,
which must then take an AMQP connection; run again, it must leave a RabbitMQ that answers
alone; and without rabbitmq-server it must say the amqp leg will skip.

Needs root (namespaces; rabbitmq-server runs as its own user) and Debian's rabbitmq-server;
skips and says so otherwise."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Loopback, unavailable
from tests.support.procs import ROOT

SCRIPT = ROOT / ".ci" / "rabbitmq"
AMQP_PROBE = """
from kombu import Connection
with Connection("amqp://guest:guest@127.0.0.1:5672//", connect_timeout=2) as conn:
    conn.ensure_connection(max_retries=1)
    print("amqp", conn.connection.server_properties["version"])
"""


def why_not() -> str | None:
    if shutil.which("rabbitmq-server") is None:
        return "no rabbitmq-server (Debian's package) to start"
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        return "no rabbitmq user"
    return unavailable()


@pytest.fixture
def machine() -> Iterator[Loopback]:
    if reason := why_not():
        pytest.skip(f"the CI script's RabbitMQ start is not tested: {reason}")
    ns = Loopback().create()
    yield ns
    ns.remove()


def run_script(ns: Loopback, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ns.prefix(), "env", *[f"{k}={v}" for k, v in env.items()],
                           str(SCRIPT)], capture_output=True, text=True, timeout=120, cwd=ROOT)


def system_rabbitmq() -> bool:
    """Whether the machine's own RabbitMQ answers on 127.0.0.1:5672 (the root namespace)."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.timeout(180)
def test_the_ci_script_starts_rabbitmq_where_none_answers(machine):
    system_before = system_rabbitmq()
    home = Path(tempfile.mkdtemp(prefix="ci-rabbitmq-"))
    user = pwd.getpwnam("rabbitmq")
    try:
        for sub in ("mnesia", "log"):
            (home / sub).mkdir()
        (home / "enabled_plugins").write_text("[].\n")
        for path in (home, home / "mnesia", home / "log", home / "enabled_plugins"):
            os.chown(path, user.pw_uid, user.pw_gid)
        env = {"RABBITMQ_NODENAME": f"ci-{machine.name}@localhost",
               "RABBITMQ_MNESIA_BASE": str(home / "mnesia"),
               "RABBITMQ_LOG_BASE": str(home / "log"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins")}

        first = run_script(machine, env)
        print(f"\n.ci/rabbitmq where none answered: {first.stderr.strip()!r}")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "ci: starting rabbitmq-server" in first.stderr
        assert "answers on 127.0.0.1:5672" in first.stderr
        probe = subprocess.run([*machine.prefix(), sys.executable, "-c", AMQP_PROBE],
                               capture_output=True, text=True, timeout=30)
        assert probe.returncode == 0 and probe.stdout.startswith("amqp "), probe.stderr
        print(f"an AMQP connection inside the namespace: {probe.stdout.strip()}")

        again = run_script(machine, env)  # it answers now: nothing started, nothing said
        assert again.returncode == 0 and again.stderr == "", again.stderr
        # the machine's own RabbitMQ (if it has one) was never touched
        assert system_rabbitmq() == system_before
    finally:
        machine.remove()  # the node, its epmd and helpers: every process in the namespace
        shutil.rmtree(home, ignore_errors=True)


def test_the_ci_script_says_the_amqp_leg_skips_without_rabbitmq_server(machine):
    bare = run_script(machine, {"PATH": "/usr/bin:/bin"})  # rabbitmq-server is in /usr/sbin
    assert bare.returncode == 0, bare.stderr
    assert "no rabbitmq-server installed: the amqp leg of the test matrix will skip" \
        in bare.stderr
