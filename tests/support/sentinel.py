"""A real Redis Sentinel deployment for tests: a master, a replica and three sentinels
(`redis-server --sentinel`), each on a free loopback port, with passwords on the data nodes and
on the sentinels. Everything is SIGKILLed and its directory removed at `stop()`.

Short timings so a failover takes seconds: `down-after-milliseconds` 1000, `failover-timeout`
3000; `repl-diskless-sync-delay 0`, since Redis 7 otherwise waits 5 s before a replica's first
sync and a master lost in that window leaves an empty replica (ARCHITECTURE.md)."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from devtools.redis_server import answers, free_port, redis_binary
from tests.support.procs import kill_all, wait_for

MASTER_NAME = "testmaster"


class SentinelCluster:
    def __init__(self) -> None:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError("no redis-server binary")
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="test-sentinel-"))
        self.password = secrets.token_hex(12)           # the data nodes'
        self.sentinel_password = secrets.token_hex(12)  # the sentinels'
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    # -- addresses --------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Celery's Sentinel form; the password in it is the data nodes' (db 0)."""
        return ";".join(f"sentinel://:{self.password}@127.0.0.1:{p}/0"
                        for p in self.sentinel_ports)

    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.url, "REDIS_SENTINEL_MASTER": MASTER_NAME,
                "REDIS_SENTINEL_PASSWORD": self.sentinel_password}

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.password, decode_responses=True,
                           socket_timeout=1, socket_connect_timeout=0.5)

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.sentinel_password, decode_responses=True,
                           socket_timeout=1, socket_connect_timeout=0.5)

    def master_port_now(self) -> int | None:
        """The master's port as a majority of the sentinels report it (None: no majority)."""
        seen: dict[int, int] = {}
        for port in self.sentinel_ports:
            try:
                addr = self.sentinel(port).sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if addr:
                seen[int(addr[1])] = seen.get(int(addr[1]), 0) + 1
        best = max(seen.items(), key=lambda kv: kv[1], default=None)
        return best[0] if best and best[1] >= 2 else None

    # -- life -------------------------------------------------------------------------------
    def _write(self, name: str, lines: list[str]) -> Path:
        path = self.dir / name
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    def _spawn(self, port: int, conf: Path, *extra: str) -> None:
        self.procs[port] = subprocess.Popen([self.binary, str(conf), *extra],
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
        wait_for(lambda: answers("127.0.0.1", port, password=self.password), 10,
                 f"redis on {port}")

    def start(self) -> SentinelCluster:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        for role, port in (("master", self.master_port), ("replica", self.replica_port)):
            lines = [f"port {port}", "bind 127.0.0.1", 'save ""', "appendonly no",
                     f"dir {self.dir}", f"dbfilename {role}.rdb", "loglevel warning",
                     f"logfile {self.dir / (role + '.log')}",
                     f"requirepass {self.password}", f"masterauth {self.password}",
                     "repl-diskless-sync yes", "repl-diskless-sync-delay 0"]
            if role == "replica":
                lines.append(f"replicaof 127.0.0.1 {self.master_port}")
            self._spawn(port, self._write(f"{role}.conf", lines))
        wait_for(lambda: self.node(self.replica_port).info("replication")
                 .get("master_link_status") == "up", 15, "the replica to sync")
        for i, port in enumerate(self.sentinel_ports):
            conf = self._write(f"sentinel-{i}.conf", [
                f"port {port}", "bind 127.0.0.1", f"dir {self.dir}",
                f"logfile {self.dir / f'sentinel-{i}.log'}",
                f"requirepass {self.sentinel_password}",
                f"sentinel sentinel-pass {self.sentinel_password}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2",
                f"sentinel auth-pass {MASTER_NAME} {self.password}",
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
                f"sentinel failover-timeout {MASTER_NAME} 3000",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
            ])
            self.procs[port] = subprocess.Popen([self.binary, str(conf), "--sentinel"],
                                                stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL)

        def sentinels_agree() -> bool:
            for port in self.sentinel_ports:
                try:
                    state = self.sentinel(port).sentinel_master(MASTER_NAME)
                except redis.RedisError:
                    return False
                if state.get("num-other-sentinels", 0) < 2 or state.get("num-slaves", 0) < 1:
                    return False
            return True

        # sentinels find each other through the master's hello channel (every 2 s)
        wait_for(sentinels_agree, 20, "the sentinels to see each other and the replica",
                 interval=0.2)

    def kill_master(self) -> float:
        """SIGKILL the master; returns when (time.time()) it died."""
        proc = self.procs.pop(self.master_port)
        proc.kill()
        proc.wait(5)
        return time.time()

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.dir.glob("*.log")))

    def stop(self) -> None:
        kill_all(self.procs)
        shutil.rmtree(self.dir, ignore_errors=True)
