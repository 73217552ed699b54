"""Redis Sentinel: Celery's `sentinel://host:port;sentinel://host:port/db` URL form, for the
tracking client, the broker and the result backend alike.

Sentinel hands out the current master's address; every new connection asks for it, so the
tracking client follows the master through a failover with no restart: connections to the old
master fail, the one retry reconnects through Sentinel, and until the sentinels have promoted
the replica the request answers 503 (refused, then `MasterNotFoundError`, both
`redis.ConnectionError`). Celery and kombu do the same for the broker and the result backend
given `master_name` in their transport options (`transport_options`).

Passwords: one in the URL (`sentinel://:pw@host:port`) is the Redis master's (and replicas');
REDIS_SENTINEL_PASSWORD is the sentinels' own (`requirepass` in sentinel.conf), when they have
one. `safe_url` masks them in every chunk (kombu's `maybe_sanitize_url` reads one URL only).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import redis
from kombu.utils.url import maybe_sanitize_url
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

SCHEME = "sentinel"
SEPARATOR = ";"
DEFAULT_PORT = 26379


def is_sentinel(url: str) -> bool:
    return urlsplit(url.split(SEPARATOR, 1)[0]).scheme == SCHEME


def safe_url(url: str) -> str:
    """`url` with the password of each `;`-separated chunk masked, for logs and messages (a
    cluster URL's `host:port,host:port` list too)."""
    return SEPARATOR.join(_masked(chunk) for chunk in url.split(SEPARATOR))


def _masked(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if sep and "," in rest.split("/", 1)[0]:  # a node list kombu's parser cannot read
        credentials, at, hosts = rest.rpartition("@")
        user = credentials.partition(":")[0]
        return f"{scheme}://{user}:**@{hosts}" if at and credentials else url
    try:
        return str(maybe_sanitize_url(url))
    except ValueError:  # unparseable: show nothing of it that could be a secret
        return f"{scheme}://…" if sep else "…"


def sentinels_of(url: str) -> list[tuple[str, int]]:
    """The (host, port) of every sentinel the URL names."""
    found = []
    for chunk in url.split(SEPARATOR):
        parts = urlsplit(chunk.strip())
        if parts.scheme != SCHEME or not parts.hostname:
            raise ValueError(f"not a sentinel:// address: {maybe_sanitize_url(chunk)!r}")
        found.append((parts.hostname, parts.port or DEFAULT_PORT))
    return found


def master_params(url: str) -> dict[str, Any]:
    """The master's db, username and password, from the first chunk (as Celery reads them)."""
    parts = urlsplit(url.split(SEPARATOR, 1)[0])
    params: dict[str, Any] = {}
    path = parts.path.strip("/")
    if path:
        params["db"] = int(path)
    if parts.username:
        params["username"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    return params


def sentinel_kwargs(password: str | None, connect_timeout: float,
                    read_timeout: float) -> dict[str, Any]:
    """How to talk to the sentinels themselves: their password, and timeouts (a sentinel that
    does not answer must not stall a request; redis-py's default retries 10 times)."""
    kwargs: dict[str, Any] = {"socket_connect_timeout": connect_timeout,
                              "socket_timeout": read_timeout,
                              "retry": Retry(NoBackoff(), 0)}
    if password:
        kwargs["password"] = password
    return kwargs


def transport_options(master: str | None, password: str | None, connect_timeout: float,
                      read_timeout: float) -> dict[str, Any]:
    """For Celery's `broker_transport_options` / `result_backend_transport_options`."""
    return {"master_name": master,
            "sentinel_kwargs": sentinel_kwargs(password, connect_timeout, read_timeout)}


class BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's master pool, waiting for a free connection instead of raising (redis-py's
    pools raise `MaxConnectionsError` at the cap: a 500 under a burst of threaded requests)."""


def master_client(url: str, master: str, password: str | None, *, max_connections: int,
                  pool_timeout: float, connect_timeout: float, read_timeout: float,
                  **connection: Any) -> redis.Redis:
    """A client of whichever server the sentinels call `master` now; each new connection asks
    them again, so it follows a failover. `connection`: the Redis connection options."""
    manager = Sentinel(sentinels_of(url),
                       sentinel_kwargs=sentinel_kwargs(password, connect_timeout, read_timeout),
                       socket_connect_timeout=connect_timeout, socket_timeout=read_timeout,
                       **master_params(url), **connection)
    client: redis.Redis = manager.master_for(
        master, connection_pool_class=BlockingSentinelPool, max_connections=max_connections,
        timeout=pool_timeout)
    return client
