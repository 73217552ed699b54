"""One vocabulary: statuses, error types and release reasons are spelled only in
worker/core/status.py. The Lua gets them from the enums; no other module, script or test
spells one as a bare string (a typo there would be a silent new status).
The Lua spells members (`STATUS.RUNNING`), written in as their strings when a script's text is
made (worker/core/lua/text.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from web.errors import ANSWERS
from worker.core import lua
from worker.core.status import TERMINAL, ErrorType, ReleaseReason, RunStatus

ROOT = Path(__file__).resolve().parents[2]

#: API error codes are a contract of their own (the JSON `error` field), and `error` is also a
#: JSON key: those two spellings are not the vocabulary's.
_API_WORDS = {"error"} | {cls.code for cls in ANSWERS}
VOCABULARY = ({s.value for s in RunStatus}
              | ({e.value for e in ErrorType} | {r.value for r in ReleaseReason}) - _API_WORDS)
QUOTED = re.compile(r"""(?P<q>['"])(?P<word>[a-z_]+)(?P=q)""")


def sources() -> list[Path]:
    paths = [*ROOT.glob("worker/**/*.py"), *ROOT.glob("worker/**/*.lua"),
             *ROOT.glob("web/**/*.py"), *ROOT.glob("tests/**/*.py"), *ROOT.glob("bench/*.py")]
    return [p for p in paths if p.name != "status.py" and p != Path(__file__)]


def test_no_module_script_or_test_spells_the_vocabulary():
    offences = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in sources()
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if any(m["word"] in VOCABULARY for m in QUOTED.finditer(line))
    ]
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("table, enum", [("STATUS", RunStatus), ("ERROR", ErrorType),
                                         ("REASON", ReleaseReason)])
def test_the_lua_gets_each_member_from_the_enums(table, enum):
    for member in enum:
        assert lua.text.inline(f"x = {table}.{member.name}") == f"x = '{member.value}'"
    terminal = next(x for x in lua.prelude().splitlines() if x.startswith("local TERMINAL ="))
    assert sorted(re.findall(r"\['([a-z_]+)'\]=true", terminal)) == sorted(TERMINAL)


def test_a_member_the_enum_lacks_fails_when_the_text_is_made():
    with pytest.raises(LookupError, match="x.lua: STATUS has no member RUNING"):
        lua.text.inline("if status == STATUS.RUNING then", "x.lua")


def test_no_script_leaves_a_member_for_redis_to_resolve():
    tables = "|".join(lua.VOCABULARY)
    for script in lua.ALL:
        text = lua.source(script.name)
        assert not re.search(rf"\b({tables})\.[A-Z]", text), script.name


def test_every_script_opens_with_a_header_naming_its_keys_argv_and_replies():
    for script in lua.ALL:
        text = (ROOT / "worker" / "core" / "lua" / f"{script.name}.lua").read_text()
        header = "\n".join(line for line in text.splitlines() if line.startswith("--"))
        assert text.startswith(f"-- {script.name}.lua:"), script.name
        assert "KEYS[1]" in header and "ARGV[1]" in header, script.name
        assert "Replies:" in header or "Reply:" in header, script.name
        assert "Safe to repeat" in header, script.name
