"""Scripts that fail on any key they did not declare in KEYS: the check a strict cluster proxy
makes, made here on a plain Redis so a test can prove every script declares what it touches.

`checking(prefix)` patches where LuaScript takes a script's text (pytest's monkeypatch) so each
script runs behind a local `redis` whose `call`/`pcall` raise when an argument is a key name
under the test's prefix that is not in KEYS. (A value that is a declared key's name, such as
a run's `idempotency_key`, passes; a key a script builds and touches without declaring fails.)
Redis' own `redis` table is untouched: the shadow is a local of the script's chunk."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.core.lua import base
from worker.core.lua.text import source


def checker(prefix: str) -> str:
    quoted = prefix.replace("\\", "\\\\").replace("'", "\\'")
    return f"""
local __prefix = '{quoted}:'
local __real = redis
local __declared = {{}}
for _, k in ipairs(KEYS) do __declared[k] = true end
local function __check(...)
  for i = 1, select('#', ...) do
    local a = select(i, ...)
    if type(a) == 'string' and string.sub(a, 1, #__prefix) == __prefix
        and not __declared[a] then
      error('undeclared key ' .. a)
    end
  end
end
local redis = setmetatable({{
  call = function(...) __check(...) return __real.call(...) end,
  pcall = function(...) __check(...) return __real.pcall(...) end,
}}, {{__index = __real}})
"""


def checking(monkeypatch: pytest.MonkeyPatch, prefix: str) -> Callable[..., str]:
    """Every LuaScript created from now on (in this test) checks its keys, and declares them
    as on a Redis Cluster (whatever its client)."""
    def checked(name: str, declare_keys: bool = True) -> str:
        return checker(prefix) + source(name, True)

    monkeypatch.setattr(base, "source", checked)
    return checked
