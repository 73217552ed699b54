"""`?wait=<seconds>` on a trigger and a read: the per-process bound on waiting requests, and
telling that the client went away while its request waits.

Each waiting request holds a gunicorn thread and, while Redis blocks it, one connection of the
waiters' own pool (worker/client/service.py: sized TEST_RUN_MAX_WAITERS, never the request
path's). One more than TEST_RUN_MAX_WAITERS is not refused: it is answered at once with the run
as it is and a `Retry-After`, since the trigger it rides on has already been admitted.

The answer's status is known only at the end (200 when the run ended, else 202 on a trigger),
so a client that left cannot be found by writing to it. gunicorn puts the client's socket in
the environ (`gunicorn.socket`): between waits of at most TEST_RUN_STREAM_KEEPALIVE it is
peeked without blocking, and EOF (or a reset) ends the wait, freeing the thread and the waiter
within one keep-alive. The Flask test client has no socket: then it just waits.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, request

#: the `Retry-After` of an answer given at once because every waiter was taken (seconds)
RETRY_AFTER_S = 2


class Waiters:
    """The requests one process lets wait at once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._free = threading.BoundedSemaphore(limit)

    def take(self) -> bool:
        return self._free.acquire(blocking=False)

    def give_back(self) -> None:
        self._free.release()


def waiters() -> Waiters:
    return current_app.extensions["testrun_waiters"]


def peer_gone(sock: Any) -> bool:
    """Whether the client closed (or reset) its end: a peek that reads EOF. Data waiting (a
    pipelined request) or nothing yet means it is still there; a TLS socket cannot be peeked,
    so it is taken to be there."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError, ValueError):
        return False
    except OSError:
        return True


def client_gone() -> Callable[[], bool] | None:
    """A check for this request's client having left (None: no socket to look at)."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None or not hasattr(sock, "recv"):
        return None
    return lambda: peer_gone(sock)


def holds_its_process() -> bool:
    """Whether holding this request would hold its server's whole process: a gunicorn worker
    without threads (sync, as in the front's `app` pool, web/front.py). Such a process serves
    one request at a time, so it neither waits nor streams: nginx routes those requests to
    the threaded pool, and one that slipped past (a `wait` spelled in percent-escapes) is
    answered at once, as when every waiter is taken."""
    environ = request.environ
    return "gunicorn.socket" in environ and not environ.get("wsgi.multithread")


def register(app: Flask, max_waiters: int) -> None:
    app.extensions["testrun_waiters"] = Waiters(max_waiters)
