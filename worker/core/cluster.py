"""Tracking on a Redis Cluster: the `redis+cluster://` URL form and the client built from it.

`redis+cluster://[user:password@]host:port[,host:port…]` names a few of the cluster's nodes
(seeds; the client learns the rest from CLUSTER SLOTS), `rediss+cluster://…` the same over TLS
(query options `ssl_cert_reqs`, `ssl_ca_certs`, `ssl_certfile`, `ssl_keyfile` pass through).
It is the form the `limits` library's cluster storage reads too, so the trigger rate limit
(worker/client/ratelimit.py) counts on the same nodes.

What a cluster changes for the rest of the code (the callers check `Connection.cluster`):
redis-py refuses EVALSHA, TIME and CONFIG GET inside a cluster pipeline, so those run one by
one; kombu has no cluster transport, so the broker is another server and admission takes the
two-step path (worker/client/message.py). A key that moves between nodes mid-call (TRYAGAIN,
ASK) is retried by redis-py a few times, then raised as `ClusterError`: a 503 like any other
outage (worker/core/errors.py); so is a cluster whose slots' map no node answers for (every
node down or restarting: `ClusterUnreachable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from redis.cluster import ClusterNode, NodesManager, RedisCluster

SCHEMES = ("redis+cluster", "rediss+cluster")
#: query options passed to the client as they are (TLS files and checks)
_PASSED = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")


def is_cluster(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SCHEMES


@dataclass(frozen=True)
class ClusterAddress:
    """A parsed `redis+cluster://` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    options: tuple[tuple[str, str], ...] = ()

    def connection_options(self) -> dict[str, Any]:
        """Every node's connection options (credentials, TLS), the same for redis-py's client
        and the rate limiter's `limits` storage, so both reach the cluster alike."""
        options: dict[str, Any] = dict(self.options)
        if self.username:
            options["username"] = self.username
        if self.password:
            options["password"] = self.password
        if self.ssl:
            options["ssl"] = True
        return options


def parse(url: str) -> ClusterAddress:
    """The seeds, credentials and TLS options of a cluster URL; ValueError names what is
    wrong (never the password)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"not a cluster URL (redis+cluster:// or rediss+cluster://): {scheme}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    user, _, password = credentials.partition(":")
    nodes = []
    for seed in hosts.split(","):
        host, sep, port = seed.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"each node must be host:port, got {seed.strip()!r}")
        nodes.append((host.strip("[]"), int(port)))
    if parts.path not in ("", "/", "/0"):
        raise ValueError("a Redis Cluster has database 0 only")
    options = tuple((k, v) for k, v in parse_qsl(parts.query) if k in _PASSED)
    unknown = {k for k, _ in parse_qsl(parts.query)} - set(_PASSED)
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}")
    return ClusterAddress(tuple(nodes), unquote(user) or None,
                          unquote(password) if credentials and password else None,
                          scheme == "rediss+cluster", options)


def limits_uri(url: str) -> tuple[str, dict[str, Any]]:
    """The `limits` library's cluster storage URI and its options for the same cluster."""
    address = parse(url)
    seeds = ",".join(f"{h}:{p}" for h, p in address.nodes)
    return f"redis+cluster://{seeds}", address.connection_options()


class ClusterUnreachable(redis.ConnectionError):
    """No node answered for the slots' map (all down or restarting, slots not yet covered):
    an outage like a single Redis away, where redis-py raises its RedisClusterException —
    which also means a programming error (a blocked pipeline command, keys of two slots), so
    only the map's refresh is translated."""


def cluster_client(url: str, **options: Any) -> RedisCluster:
    """A RedisCluster over the URL's seeds, with `options` for every node's connections (the
    same timeouts as a single Redis), whose unreadable slots' map is an outage
    (`outage_when_unreadable`)."""
    address = parse(url)
    try:
        client = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in address.nodes],
                              **address.connection_options(), **options)
    except redis.exceptions.RedisClusterException as exc:
        raise ClusterUnreachable(f"no node of the cluster answers: {exc}") from exc
    return outage_when_unreadable(client)


def outage_when_unreadable(client: RedisCluster) -> RedisCluster:
    """`client`, raising ClusterUnreachable — a `redis.ConnectionError`, so every caller's
    outage handling applies (a 503, a beat that tries again) — where redis-py raises its
    RedisClusterException because the slots' map cannot be read: at start, or when it
    refreshes the map after a connection error (`NodesManager.initialize`, shared by the
    client and its pipelines). Without it a trigger while every node restarted answered 500.
    redis-py builds the NodesManager inside RedisCluster's constructor, so the one instance's
    method is wrapped."""
    nodes: NodesManager = client.nodes_manager
    refresh = nodes.initialize

    def initialize(*args: Any, **kwargs: Any) -> Any:
        try:
            return refresh(*args, **kwargs)
        except redis.exceptions.RedisClusterException as exc:
            raise ClusterUnreachable(f"the cluster's slots cannot be read: {exc}") from exc

    nodes.initialize = initialize  # type: ignore[method-assign]
    return client
