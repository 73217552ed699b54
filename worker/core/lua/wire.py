"""A script call (EVALSHA) sent over a pooled connection without redis-py's command layers.

Why: every trigger, conflict, start and finish is one script call, and redis-py 8.1 wraps each
command in layers these calls do not use — Script's pipeline check, `execute_command`'s
OpenTelemetry records (off unless configured), the HIMPORT branch, the response callbacks
(none for EVALSHA). Measured here (CPU per call of a 3-value reply, 20,000 calls, a local
Redis): ~155–160 µs through `Script.__call__`, ~116–127 µs this way — about a quarter of the
client's cost of every hot call (docs/BENCHMARKS.md).

What it keeps of `Redis._execute_command`, so a call behaves as redis-py's would: the pool
(its fork check, its check that a connection has no unread reply, its wait for a free
connection), the connection's retry policy (the client's `Retry`: the connection closed after a
connection error or timeout, then tried again as often as the policy says), the reply read by
the connection's parser (decoding; an error reply raised as ResponseError, NOSCRIPT as
NoScriptError, which the caller answers by loading the script). A RedisCluster (commands
routed by key), a single-connection client, a client-side cache or a callback registered for
EVALSHA go through redis-py as before (`lean` says no).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
from redis.connection import ConnectionPool


def lean(client: Any) -> ConnectionPool | None:
    """The pool to send `client`'s script calls through, or None: redis-py's own path."""
    if type(client) is not redis.Redis or client.connection is not None:
        return None
    if "EVALSHA" in client.response_callbacks or client.get_cache() is not None:
        return None
    return client.connection_pool


def evalsha(pool: ConnectionPool, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
    """The script's reply, its connection returned to `pool` whatever happens."""
    conn = pool.get_connection()
    command = ("EVALSHA", sha, len(keys), *keys, *args)

    def send() -> Any:
        conn.send_command(*command)
        return conn.read_response()

    try:
        return conn.retry.call_with_retry(send, lambda _error: conn.disconnect())
    finally:
        pool.release(conn)
