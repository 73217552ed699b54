"""`python -m bench.waiters [N]`: what N requests waiting with `?wait=` cost one web process
(default 200): its memory, its threads and its Redis connections, counted with CLIENT LIST by
the waiters' pool name, and how fast the waiters are freed when their clients leave.

One gunicorn worker with N + 8 threads and TEST_RUN_MAX_WAITERS=N, no Celery worker (the run
stays queued, so every waiter waits its whole `wait`), on the Redis at REDIS_URL (default
127.0.0.1:6379) under a key prefix of its own, removed after. Each waiter is a raw socket, so it
can leave without a word."""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid

import redis

from .procs import Gunicorn

KEEPALIVE_S = 2.0


def rss_and_threads(pids: list[int]) -> tuple[int, int]:
    rss = threads = 0
    for pid in pids:
        for line in open(f"/proc/{pid}/status").read().splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1])
            elif line.startswith("Threads:"):
                threads += int(line.split()[1])
    return rss, threads


def named(client: redis.Redis, name: str) -> int:
    return sum(1 for c in client.client_list() if c.get("name") == name)


def wait_until(predicate, timeout: float, what: str) -> float:  # noqa: ANN001
    began = time.monotonic()
    while not predicate():
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - began


def main(argv: list[str] | None = None) -> int:
    n = int((argv or sys.argv[1:] or ["200"])[0])
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"bench-wait-{uuid.uuid4().hex[:8]}"
    env = {"REDIS_URL": url, "TEST_RUN_KEY_PREFIX": prefix, "TEST_RUN_QUEUE": prefix,
           "WEBHOOK_QUEUE": f"{prefix}-webhooks", "TEST_RUN_MAX_WAITERS": str(n),
           "TEST_RUN_MAX_WAIT": "120", "TEST_RUN_STREAM_KEEPALIVE": str(KEEPALIVE_S)}
    client = redis.Redis.from_url(url, decode_responses=True)
    server = Gunicorn("web:create_app()", env, worker_class="gthread", workers=1,
                      threads=n + 8)
    socks: list[socket.socket] = []
    try:
        import json
        import urllib.request

        req = urllib.request.Request(server.url + "/api/workflows/hang/test-runs", data=b"{}",
                                     headers={"Content-Type": "application/json"},
                                     method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            run_id = json.loads(resp.read())["run_id"]
        with urllib.request.urlopen(server.url + f"/api/test-runs/{run_id}", timeout=10):
            pass
        pids = server.children()
        rss0, threads0 = rss_and_threads(pids)
        clients0 = int(client.info("clients")["connected_clients"])
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(f"GET /api/test-runs/{run_id}?wait=100 HTTP/1.1\r\n"
                         f"Host: 127.0.0.1\r\n\r\n".encode())
            socks.append(sock)
        name = f"{prefix}-waiters"
        took = wait_until(lambda: named(client, name) >= n, 60, f"{n} waiters blocking")
        rss1, threads1 = rss_and_threads(pids)
        clients1 = int(client.info("clients")["connected_clients"])
        mem = [int(c.get("tot-mem", 0)) for c in client.client_list() if c.get("name") == name]
        began = time.monotonic()
        with urllib.request.urlopen(server.url + f"/api/test-runs/{run_id}", timeout=10):
            read_ms = (time.monotonic() - began) * 1000
        for sock in socks:
            sock.close()
        socks.clear()
        freed = wait_until(lambda: named_blocked(client, name) == 0, 60, "the waiters freed")
        print(f"waiters: {n} (one gunicorn gthread worker, {n + 8} threads)")
        print(f"all {n} blocking in XREAD after {took:.1f} s")
        print(f"worker RSS: {rss0 / 1024:.1f} MiB idle -> {rss1 / 1024:.1f} MiB "
              f"(+{(rss1 - rss0) / n:.0f} KiB per waiter); threads {threads0} -> {threads1}")
        print(f"Redis connections: {clients0} -> {clients1} (+{clients1 - clients0}); "
              f"named {name}: {named(client, name)}; request path unaffected: a read took "
              f"{read_ms:.1f} ms meanwhile")
        print(f"Redis memory per waiter connection (CLIENT LIST tot-mem): "
              f"{sum(mem) / max(1, len(mem)) / 1024:.1f} KiB")
        print(f"all clients closed: every waiter free after {freed:.1f} s "
              f"(keep-alive {KEEPALIVE_S:g} s)")
    finally:
        for sock in socks:
            sock.close()
        server.stop()
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    return 0


def named_blocked(client: redis.Redis, name: str) -> int:
    """Waiter connections still blocked in XREAD (the pool keeps idle ones open)."""
    return sum(1 for c in client.client_list()
               if c.get("name") == name and "b" in c.get("flags", ""))


if __name__ == "__main__":
    sys.exit(main())
