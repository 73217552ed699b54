"""A real RabbitMQ cluster of separate `rabbitmq-server` nodes on this machine, for the tests
that kill a quorum queue's leader (tests/chaos/test_rabbit_cluster.py).

Each node is its own Erlang VM with its own node name (a unique prefix per cluster), AMQP and
distribution ports (picked free), and `HOME`, Mnesia, log and config files under one temp
directory; the nodes share an Erlang cookie written there. The system's RabbitMQ
(127.0.0.1:5672, `rabbit@localhost`) is never stopped, configured or asked anything: every
node reads our own env file and config file, never /etc/rabbitmq. The nodes register with the
host's `epmd` under their unique names, as any Erlang node does.

The first node boots alone; the others are given it as their classic-config peer and join it on
their first boot (no `rabbitmqctl join_cluster` round, which costs a VM start per call). A node
is stopped with SIGKILL to its process group (the VM, its port helpers, the wrapper script):
that is both the fault the tests inject and the teardown.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from devtools.redis_server import free_port
from tests.support.broker import answers
from tests.support.procs import wait_for

SBIN = Path("/usr/lib/rabbitmq/bin")  # the real scripts: /usr/sbin's wrapper su's to rabbitmq
SERVER = SBIN / "rabbitmq-server"
CTL = SBIN / "rabbitmqctl"
#: one scheduler, no busy-waiting: three idle VMs must not eat a 2-core machine
ERL_ARGS = ("+S 1:1 +A 8 +sbwt none +sbwtdcpu none +sbwtdio none "
            "-kernel inet_dist_use_interface {127,0,0,1}")


def installed() -> bool:
    return SERVER.exists() and CTL.exists() and shutil.which("erl") is not None


@dataclass
class Node:
    name: str  # Erlang node name, e.g. trc1a2b3c4d-1@localhost
    amqp_port: int
    dist_port: int
    base: Path  # HOME, Mnesia, logs and config of this node
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}//"

    def start(self) -> Node:
        log = open(self.base / "console.log", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([str(SERVER)], env=self.env, cwd=self.base, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 90) -> Node:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(f"rabbitmq node {self.name} exited:\n{self.console()}")
            return answers(self.url, timeout=0.3)

        wait_for(ready, timeout, f"rabbitmq node {self.name} to accept AMQP", interval=0.2)
        return self

    def kill(self) -> float:
        """SIGKILL the node's whole process group; returns the monotonic time of the kill."""
        killed_at = time.monotonic()
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        return killed_at

    def console(self) -> str:
        try:
            return (self.base / "console.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class RabbitCluster:
    """`size` nodes forming one cluster; `urls` is kombu's failover list (`;`-separated)."""

    def __init__(self, size: int = 3) -> None:
        self.prefix = f"trc{uuid.uuid4().hex[:8]}"
        self.root = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        cookie = secrets.token_hex(16).upper()
        self.nodes: list[Node] = []
        for i in range(1, size + 1):
            self.nodes.append(self._node(i, cookie))

    def _node(self, i: int, cookie: str) -> Node:
        name = f"{self.prefix}-{i}@localhost"
        base = self.root / f"node{i}"
        for sub in ("home", "mnesia", "log"):
            (base / sub).mkdir(parents=True)
        cookie_file = base / "home" / ".erlang.cookie"
        cookie_file.write_text(cookie)
        cookie_file.chmod(0o400)
        amqp_port, dist_port = free_port(), free_port()
        conf = [f"listeners.tcp.default = 127.0.0.1:{amqp_port}",
                "disk_free_limit.absolute = 10MB",
                "log.console = false", "log.file.level = info"]
        if i > 1:  # join the first node on first boot
            conf += ["cluster_formation.peer_discovery_backend = classic_config",
                     f"cluster_formation.classic_config.nodes.1 = {self.prefix}-1@localhost"]
        (base / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        (base / "rabbitmq-env.conf").write_text("")  # never /etc/rabbitmq/rabbitmq-env.conf
        (base / "enabled_plugins").write_text("[].\n")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(base / "home"),
            "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
            "RABBITMQ_NODENAME": name,
            "RABBITMQ_DIST_PORT": str(dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": ERL_ARGS,
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }
        return Node(name, amqp_port, dist_port, base, env)

    @property
    def urls(self) -> str:
        return ";".join(node.url for node in self.nodes)

    def start(self, timeout: float = 120) -> RabbitCluster:
        """Boot the first node, then the others (which join it); fails if they did not."""
        try:
            self.nodes[0].start().wait_ready(timeout)
            for node in self.nodes[1:]:
                node.start()
            for node in self.nodes[1:]:
                node.wait_ready(timeout)
            running = self.running_nodes()
            assert sorted(running) == sorted(n.name for n in self.nodes), running
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def ctl(self, *args: str, via: Node | None = None, timeout: float = 30) -> str:
        """`rabbitmqctl` against a live node (any, unless `via`); its stdout."""
        node = via or next(n for n in self.nodes if n.alive())
        env = {k: v for k, v in node.env.items() if k != "RABBITMQ_DIST_PORT"}
        done = subprocess.run([str(CTL), "-n", node.name, *args], env=env, capture_output=True,
                              text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr or done.stdout}")
        return done.stdout

    def running_nodes(self) -> list[str]:
        status = json.loads(self.ctl("cluster_status", "--formatter", "json"))
        return list(status.get("running_nodes", []))

    def queue_info(self, queue: str) -> dict[str, object]:
        """A queue's type, leader, members and message counts, as the cluster reports them."""
        rows = json.loads(self.ctl("list_queues", "name", "type", "leader", "members",
                                   "messages", "messages_unacknowledged", "--formatter", "json"))
        for row in rows:
            if row.get("name") == queue:
                return dict(row)
        raise LookupError(f"no queue {queue!r} in the cluster")

    def leader_of(self, queue: str) -> Node:
        return self.node(str(self.queue_info(queue)["leader"]))
