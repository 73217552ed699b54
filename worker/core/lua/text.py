"""The text Redis runs for a script: the generated vocabulary prelude, then `declare.lua` (the
keys a script learns from what it reads: `need()`), `lib.lua`, then the script's own
`<name>.lua` (all beside this file).

A script that may free a slot (RELEASING) runs as a function whose reply is handed back as
`{reply, promoted run id or '', '1' if its message was pushed, expired pending run id or ''}`:
release() promotes the workflow's pending run in the same step (or ends it expired, past its
pending timeout), and the caller must learn of it (to publish its message on the two-step
path, and to count it). base.LuaScript unwraps it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ..runs import SUMMARY_FIELDS
from ..status import TERMINAL
from .replies import VOCABULARY

HERE = Path(__file__).parent


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@cache
def prelude() -> str:
    """The vocabulary as Lua tables; reading a member a table lacks raises inside Redis."""
    lines = [
        "-- generated from worker/core/status.py and worker/core/lua/replies.py when loaded",
        "local function enum(name, members)",
        "  return setmetatable(members, {__index = function(_, key)",
        "    error(name .. ' has no member ' .. tostring(key)) end})",
        "end",
    ]
    for table, members in VOCABULARY.items():
        body = ", ".join(f"{m.name}={_lua_string(m.value)}" for m in members)
        lines.append(f"local {table} = enum('{table}', {{{body}}})")
    terminal = ", ".join(f"[{_lua_string(s.value)}]=true" for s in sorted(TERMINAL))
    lines.append(f"local TERMINAL = {{{terminal}}}")
    # the record's fields a runs list shows (worker/core/runs.py): lib.lua's summary()
    summary = ", ".join(_lua_string(f.stored) for f in SUMMARY_FIELDS if f.stored)
    lines.append(f"local SUMMARY_FIELDS = {{{summary}}}")
    return "\n".join(lines) + "\n"


#: the scripts that call release() or promote() (lib.lua): their replies carry PROMOTED
RELEASING = frozenset({"admit", "finish", "start", "heartbeat", "force_release", "promote"})


@cache
def source(name: str, declare_keys: bool = False) -> str:
    """The full text Redis runs for `<name>.lua`. `declare_keys`: a script asks for every key
    it learns by reading rather than touch it undeclared (declare.lua; on a Redis Cluster)."""
    strict = f"local DECLARE_KEYS = {'true' if declare_keys else 'false'}\n"
    body = (HERE / f"{name}.lua").read_text()
    if name in RELEASING:
        body = ("local reply = (function()\n" + body + "\nend)()\n"
                "if reply == nil then reply = false end\n"
                "return {reply, PROMOTED[1], PROMOTED[2], PROMOTED[3]}\n")
    return prelude() + strict + "".join((HERE / part).read_text()
                                        for part in ("declare.lua", "lib.lua")) + body
