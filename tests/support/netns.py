"""Separate "hosts" on one machine: network namespaces (`ip netns`) each joined to the root
namespace by a veth pair, and a private Redis listening on the root-side addresses.

Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN); `unavailable()` says why not, for a skip. Names
carry a random tag, the subnet is a 10.x.y.0/24 not in use on the machine, and `remove()` is
safe to call twice and after a partial `create()`. Traffic only ever goes to addresses inside
the namespaces made here or to loopback."""

from __future__ import annotations

import os
import random
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from devtools.redis_server import answers, free_port, redis_binary
from tests.support.procs import wait_for


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10,
                          check=check)


def unavailable() -> str | None:
    """Why namespaces cannot be made here (None if they can): tried, then removed."""
    if shutil.which("ip") is None:
        return "no `ip` command (Debian's iproute2)"
    if os.geteuid() != 0:
        return "creating network namespaces and veth pairs needs root (CAP_NET_ADMIN)"
    probe = f"trprobe{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    _ip("netns", "del", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    return None


class Hosts:
    """`count` namespaces; host i is reached from the root namespace at `host_addr(i)`, and
    reaches the root namespace's services at `gateway(i)`."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.tag = secrets.token_hex(2)
        used = _ip("-4", "-o", "addr").stdout
        free = [n for n in range(100, 250) if f" 10.{n}." not in used]
        self.net = random.choice(free)
        self.ns = [f"tr{self.tag}n{i}" for i in range(count)]
        self.root_if = [f"tr{self.tag}h{i}" for i in range(count)]
        self.ns_if = [f"tr{self.tag}v{i}" for i in range(count)]

    def gateway(self, i: int) -> str:
        """The root namespace's end of host i's link."""
        return f"10.{self.net}.0.{4 * i + 1}"

    def host_addr(self, i: int) -> str:
        return f"10.{self.net}.0.{4 * i + 2}"

    def prefix(self, i: int) -> list[str]:
        """argv prefix that runs a command on host i."""
        return ["ip", "netns", "exec", self.ns[i]]

    def create(self) -> Hosts:
        try:
            for i in range(self.count):
                _ip("netns", "add", self.ns[i])
                _ip("link", "add", self.root_if[i], "type", "veth", "peer", "name",
                    self.ns_if[i], "netns", self.ns[i])
                _ip("addr", "add", f"{self.gateway(i)}/30", "dev", self.root_if[i])
                _ip("link", "set", self.root_if[i], "up")
                _ip("-n", self.ns[i], "addr", "add", f"{self.host_addr(i)}/30", "dev",
                    self.ns_if[i])
                _ip("-n", self.ns[i], "link", "set", self.ns_if[i], "up")
                _ip("-n", self.ns[i], "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def cut(self, i: int) -> None:
        """Host i's link goes dark: packets are dropped, no connection is reset."""
        _ip("link", "set", self.root_if[i], "down")

    def restore(self, i: int) -> None:
        _ip("link", "set", self.root_if[i], "up")

    def remove(self) -> None:
        """Deleting a namespace deletes its end of the veth pair, and with it the pair."""
        for i in range(self.count):
            _ip("netns", "del", self.ns[i], check=False)
            _ip("link", "del", self.root_if[i], check=False)

    def leftovers(self) -> list[str]:
        names = _ip("netns", "list").stdout + _ip("-o", "link").stdout
        return [n for n in self.ns + self.root_if if n in names]


class SharedRedis:
    """A private redis-server on loopback and on the root end of every host's link."""

    def __init__(self, hosts: Hosts) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server binary")
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.dir = Path(tempfile.mkdtemp(prefix="test-netns-redis-"))
        conf = self.dir / "redis.conf"
        binds = " ".join(["127.0.0.1"] + [hosts.gateway(i) for i in range(hosts.count)])
        conf.write_text("\n".join([
            f"port {self.port}", f"bind {binds}", 'save ""', "appendonly no",
            f"dir {self.dir}", f"requirepass {self.password}", "loglevel warning"]) + "\n")
        conf.chmod(0o600)
        self.proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_for(lambda: answers("127.0.0.1", self.port, password=self.password), 10,
                 "the shared redis")

    def url(self, address: str = "127.0.0.1") -> str:
        return f"redis://:{self.password}@{address}:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


class NamedHosts:
    """A bare network namespace (its own loopback only: nothing in it reaches anything) whose
    /etc/hosts says what the test wants (`ip netns exec` bind-mounts /etc/netns/<ns>/hosts over
    /etc/hosts), to resolve made-up names to chosen addresses. Nothing is ever sent to them.
    Removed, with its /etc/netns/<ns>, however the test ends (a context manager)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.ns = f"trdns{secrets.token_hex(3)}"
        self.names = names
        self.etc = Path("/etc/netns") / self.ns

    def __enter__(self) -> NamedHosts:
        try:
            _ip("netns", "add", self.ns)
            self.etc.mkdir(parents=True)
            lines = ["127.0.0.1 localhost"] + [f"{a} {n}" for n, a in self.names.items()]
            (self.etc / "hosts").write_text("\n".join(lines) + "\n")
        except BaseException:
            self.remove()
            raise
        return self

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.ns]

    def remove(self) -> None:
        _ip("netns", "del", self.ns, check=False)
        shutil.rmtree(self.etc, ignore_errors=True)

    def __exit__(self, *exc: object) -> None:
        self.remove()


class Loopback:
    """One namespace with only its own loopback up: a machine where nothing answers on
    127.0.0.1 (the root namespace's services, e.g. its RabbitMQ, are out of reach)."""

    def __init__(self) -> None:
        self.name = f"trlo{secrets.token_hex(3)}"

    def create(self) -> Loopback:
        _ip("netns", "add", self.name)
        try:
            _ip("-n", self.name, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def pids(self) -> list[int]:
        return [int(p) for p in _ip("netns", "pids", self.name, check=False).stdout.split()]

    def remove(self) -> None:
        """SIGKILL every process inside (each one started in it, by this test), then the
        namespace; safe to call twice."""
        for pid in self.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        wait_for(lambda: not self.pids(), 10, f"the processes in {self.name} to die")
        _ip("netns", "del", self.name, check=False)
