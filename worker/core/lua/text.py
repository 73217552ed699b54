"""The text Redis runs for a script: the generated prelude (TERMINAL, summary_fields()), then
`declare.lua` (the keys a script learns from what it reads: `need()`), `lib.lua`, then the
script's own `<name>.lua` (all beside this file), with every vocabulary member a script spells
(`STATUS.RUNNING`, `ADMIT.CONFLICT`) written in as its string.

The members are written in rather than built as Lua tables because Redis runs a script's whole
text on every call: fourteen enum tables with their metatables cost each call ~8 µs of Redis'
time (a quarter of a 409's, measured), while a literal costs nothing. A member the enum lacks
fails here, when the text is made, naming the script — before Redis ever sees it.

A script that may free a slot (RELEASING) runs as a function whose reply is handed back as
`{reply, promoted run id or '', '1' if its message was pushed, expired pending run id or ''}`:
release() promotes the workflow's pending run in the same step (or ends it expired, past its
pending timeout), and the caller must learn of it (to publish its message on the two-step
path, and to count it). base.LuaScript unwraps it."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from ..runs import SUMMARY_FIELDS
from ..status import TERMINAL
from .replies import VOCABULARY

HERE = Path(__file__).parent

#: `TABLE.MEMBER` for every table of the vocabulary (replies.py VOCABULARY)
_MEMBER = re.compile(r"\b(" + "|".join(sorted(VOCABULARY, key=len, reverse=True))
                     + r")\.([A-Z][A-Z0-9_]*)\b")


def _lua_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def member(table: str, name: str) -> str:
    """`table.name` (e.g. STATUS.RUNNING) as the Lua string literal written into a script;
    LookupError for a member the enum lacks."""
    enum = VOCABULARY[table]
    try:
        return _lua_string(enum[name].value)
    except KeyError:
        raise LookupError(f"{table} has no member {name}") from None


def inline(text: str, where: str = "a script") -> str:
    """`text` with each vocabulary member spelled as its string."""
    def literal(found: re.Match[str]) -> str:
        try:
            return member(found.group(1), found.group(2))
        except LookupError as exc:
            raise LookupError(f"{where}: {exc}") from None

    return _MEMBER.sub(literal, text)


@cache
def prelude() -> str:
    """The tables a script indexes by a value it read: TERMINAL (a status → true) and the
    fields a runs list shows (`summary_fields()`)."""
    lines = ["-- generated from worker/core/status.py and worker/core/runs.py when loaded"]
    terminal = ", ".join(f"[{_lua_string(s.value)}]=true" for s in sorted(TERMINAL))
    lines.append(f"local TERMINAL = {{{terminal}}}")
    # the record's fields a runs list shows (worker/core/runs.py): lib.lua's summary()
    summary = ", ".join(_lua_string(f.stored) for f in SUMMARY_FIELDS if f.stored)
    # built by the one script that lists runs (read.lua), not on every call of every script
    lines.append(f"local function summary_fields() return {{{summary}}} end")
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
    shared = "".join((HERE / part).read_text() for part in ("declare.lua", "lib.lua"))
    return prelude() + strict + inline(shared, "lib.lua") + inline(body, f"{name}.lua")
