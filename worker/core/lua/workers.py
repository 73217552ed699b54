"""advertise.lua / workers.lua's wrappers: worker liveness, a sorted set of hostname → end of
its advertisement on Redis' clock (written by worker/runner/liveness.py, read by the web's
workers-online count and the CLI's list)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..keys import Keys
from .base import LuaScript


class Advertise(LuaScript):
    name = "advertise"

    def __call__(self, keys: Keys, queue: str, hostname: str, *, ttl_ms: int,
                 info: dict[str, str] | None = None) -> int:
        """Advertise `hostname` on `queue` for `ttl_ms` (0: withdraw); the workers online."""
        flat = [part for pair in (info or {}).items() for part in pair]
        return int(self._call([keys.workers(queue), keys.worker_info_prefix() + hostname],
                              [hostname, ttl_ms, *flat]))


@dataclass(frozen=True)
class WorkerInfo:
    hostname: str
    seconds_left: float
    info: dict[str, str]


class Workers(LuaScript):
    name = "workers"

    def count(self, keys: Keys, queue: str, client: Any = None) -> Any:
        """The workers online on `queue` (on a pipeline: queued; `int(reply[0])` later)."""
        reply = self._call([keys.workers(queue)], [keys.worker_info_prefix(), "0"], client)
        return reply if client is not None else int(reply[0])

    def list(self, keys: Keys, queue: str) -> list[WorkerInfo]:
        reply = self._call([keys.workers(queue)], [keys.worker_info_prefix(), "1"])
        return [WorkerInfo(str(host), int(left) / 1000,
                           dict(zip(flat[::2], flat[1::2], strict=True)))
                for host, left, flat in reply[1:]]
