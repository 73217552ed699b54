"""What every script wrapper shares: `LuaScript` (one script registered on a client) and the
decoding of the reply parts several scripts give (a run, a time in milliseconds)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any, ClassVar

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from ..runs import Run
from .replies import DeclareReply
from .text import RELEASING, source
from .wire import evalsha, lean

#: told of each run a script promoted into a freed slot: (run id, its message was pushed)
OnPromoted = Callable[[str, bool], None]
#: told of each pending run a script ended expired where it would have promoted it
OnPendingExpired = Callable[[str], None]


def run_from_reply(snapshot: Any) -> Run | None:
    """A run from a script's `{HGETALL, log lines, …}`."""
    if not snapshot:
        return None
    flat, logs = snapshot[0], snapshot[1]
    return Run.from_redis(dict(zip(flat[::2], flat[1::2], strict=True)), logs)


def ms_to_seconds(ms: Any) -> float | None:
    """A script's milliseconds ('' or nil: none) as seconds."""
    return int(ms) / 1000 if ms not in (None, "") else None


def compact_json(value: Any) -> str:
    """Compact JSON as UTF-8 text: stored at the size TEST_RUN_MAX_INPUT_BYTES measured (ASCII
    escapes would store a non-ASCII character in up to three times its bytes)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


#: calls of one script for one operation made at once: the first, and one per change of the
#: keys it needs (declare.lua) — a holder replaced between two calls, the usual case
IMMEDIATE_KEY_ROUNDS = 3
#: past those, how long the calls go on, backing off: each repeat means another call changed
#: what this one reads and won, so N calls racing on a workflow (queue triggers superseding
#: each other's pending run, admissions past the runs kept) all go through, the last after
#: about N/2 calls (25 for 50 queue triggers at once on a cluster, measured; a fixed 4 answered
#: 29 of them 503). The bound only stops a caller starved by an endless stream of winners
KEY_ROUNDS_DEADLINE_S = 2.0
#: the backoff's first and largest ceiling (seconds; each wait is drawn below it: full jitter)
KEY_ROUNDS_BACKOFF_S = (0.001, 0.05)


class KeysKeptChanging(redis.exceptions.TryAgainError):
    """A script needed other keys on every call for KEY_ROUNDS_DEADLINE_S (what it reads kept
    changing under contention): retryable, a 503 like a slot in migration."""


def needs_keys(reply: Any) -> bool:
    """True for declare.lua's {DECLARE.NEED_KEYS, key, …}."""
    return (isinstance(reply, list) and bool(reply)
            and reply[0] == DeclareReply.NEED_KEYS.value)


class LuaScript:
    """One script, registered on a client (EVALSHA, loaded again on NOSCRIPT)."""

    name: ClassVar[str]

    def __init__(self, client: redis.Redis, declare_keys: bool | None = None) -> None:
        """`declare_keys` (default: on a Redis Cluster client): the script asks for every key
        it learns by reading (declare.lua) instead of touching it undeclared."""
        if declare_keys is None:
            declare_keys = isinstance(client, RedisCluster)
        self.declare_keys = declare_keys
        self._script: Script = client.register_script(source(self.name, declare_keys))
        #: the pool its calls go through without redis-py's command layers (wire.py); None:
        #: through redis-py (a cluster, a single-connection client)
        self._pool = lean(client)
        self._releasing = self.name in RELEASING
        #: set by the run store: each run this script promotes is handed to it, and each
        #: pending run it ended expired instead
        self.on_promoted: OnPromoted | None = None
        self.on_pending_expired: OnPendingExpired | None = None

    def unwrap(self, raw: Any) -> Any:
        """A RELEASING script's own reply out of text.py's wrapping; what it promoted (or
        ended expired instead) handed to the hooks."""
        reply, promoted, pushed, expired = raw
        if promoted and self.on_promoted is not None:
            self.on_promoted(str(promoted), pushed == "1")
        if expired and self.on_pending_expired is not None:
            self.on_pending_expired(str(expired))
        return reply

    def load(self) -> None:
        """SCRIPT LOAD now, so the first call is one EVALSHA (no NOSCRIPT round trip)."""
        self._script.sha = self._script.registered_client.script_load(self._script.script)

    def _evalsha(self, keys: list[str], args: list[Any]) -> Any:
        """One call; on NOSCRIPT (a Redis restarted or flushed) loaded and called again, as
        redis-py's Script does."""
        if self._pool is None:
            return self._script(keys=keys, args=args)
        try:
            return evalsha(self._pool, self._script.sha, keys, args)
        except NoScriptError:
            self.load()
            return evalsha(self._pool, self._script.sha, keys, args)

    def _call(self, keys: list[str], args: list[Any], client: Any = None) -> Any:
        """The script's reply; when it asks for keys it learned by reading (declare.lua),
        called again with them declared, until it needs none (IMMEDIATE_KEY_ROUNDS calls at
        once, then backing off for at most KEY_ROUNDS_DEADLINE_S). On a pipeline (`client`)
        only scripts that never ask are queued: their reply is returned as it comes (a
        RELEASING script's still wrapped: text.py). A RELEASING script's promotion, if any, is
        handed to `on_promoted`."""
        if client is not None:
            return self._script(keys=keys, args=args, client=client)
        declared = list(keys)
        deadline, calls = None, 0
        while True:
            reply = self._evalsha(declared, args)
            # a NEED_KEYS reply wrote nothing: nothing was promoted or ended
            own = reply[0] if self._releasing else reply
            if not needs_keys(own):
                return self.unwrap(reply) if self._releasing else reply
            reply = own
            declared += [str(k) for k in reply[1:] if k not in declared]
            calls += 1
            if calls >= IMMEDIATE_KEY_ROUNDS:
                now = time.monotonic()
                deadline = deadline or now + KEY_ROUNDS_DEADLINE_S
                if now >= deadline:
                    raise KeysKeptChanging(f"{self.name}.lua needed other keys on each of "
                                           f"{calls} calls")
                first, most = KEY_ROUNDS_BACKOFF_S
                ceiling = min(most, first * 2 ** (calls - IMMEDIATE_KEY_ROUNDS))
                time.sleep(random.uniform(0, ceiling))
