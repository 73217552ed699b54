"""A run record as Redis holds it (a hash of strings) → the public shape of a run."""

from __future__ import annotations

import re
from pathlib import Path

from worker.core import lua
from worker.core.runs import INTERNAL_FIELDS, RUN_FIELDS, SUMMARY_FIELDS, Run, iso
from worker.core.status import ErrorType, ReleaseReason, RunStatus


def test_a_full_record_decodes_to_the_public_shape():
    raw = {"run_id": "echo-" + "a" * 32, "workflow_id": "echo", "type": "test",
           "status": RunStatus.FAILED.value, "created_ms": "1700000000000",
           "started_ms": "1700000000500", "finished_ms": "1700000001000",
           "input": '{"a":1}', "result": "", "error": "RuntimeError: x",
           "error_type": ErrorType.ERROR.value, "worker": "w@h",
           "release_reason": ReleaseReason.FAILED.value, "released_ms": "1700000001000",
           "heartbeat_ms": "1700000000500", "pid": "123"}
    run = Run.from_redis(raw, ["line 1"])
    assert run.status is RunStatus.FAILED and run.terminal
    data = run.to_dict()
    assert data["created_at"] == "2023-11-14T22:13:20.000Z"
    assert data["finished_at"] == iso(1700000001000)
    assert data["input"] == {"a": 1} and data["result"] is None
    assert data["error_type"] == ErrorType.ERROR and data["release_reason"] == ReleaseReason.FAILED
    assert data["logs"] == ["line 1"] and data["record_lost"] is False
    assert "pid" not in data  # internal: which pool process to renew for and to kill


def test_a_queued_record_has_nulls_not_empty_strings():
    run = Run.from_redis({"run_id": "e-" + "0" * 32, "workflow_id": "e",
                          "status": RunStatus.QUEUED.value, "created_ms": "1", "input": "{}"})
    data = run.to_dict()
    assert not run.terminal
    for field in ("started_at", "finished_at", "result", "error", "error_type", "worker",
                  "release_reason", "released_at", "last_heartbeat_at"):
        assert data[field] is None, field
    assert data["type"] == "test" and data["logs"] == []


def test_a_record_rebuilt_after_redis_lost_it_says_so():
    run = Run.from_redis({"run_id": "e-" + "0" * 32, "workflow_id": "e", "record_lost": "1",
                          "status": RunStatus.SUCCEEDED.value, "input": "{}"})
    assert run.to_dict()["record_lost"] is True and run.created_ms is None


# -- the run's fields, declared once (worker/core/runs.py RUN_FIELDS) ---------------------------

LUA = Path(__file__).resolve().parents[2] / "worker" / "core" / "lua"
#: a hash command on the run record (`run` or a name built from the run prefix) and its quoted
#: field names, as the scripts write them
_HASH_CALL = re.compile(r"redis\.call\('(HSET|HGET|HMGET|HSETNX|HINCRBY)',\s*([a-z_. ]+?),"
                        r"(?P<rest>[^)]*)\)", re.S)


def test_to_dict_shows_exactly_the_declared_fields_in_their_order():
    run = Run.from_redis({"run_id": "e-" + "0" * 32, "workflow_id": "e",
                          "status": RunStatus.QUEUED.value})
    assert list(run.to_dict()) == [f.name for f in RUN_FIELDS]


def test_every_record_field_a_script_touches_is_declared():
    """A script that writes or reads a field of the run record nobody declared (a typo, or a
    new field the API and the models do not know) fails here."""
    declared = {f.stored for f in RUN_FIELDS if f.stored} | set(INTERNAL_FIELDS)
    touched: dict[str, set[str]] = {}
    for script in LUA.glob("*.lua"):
        for call in _HASH_CALL.finditer(script.read_text()):
            target = call.group(2).strip()
            if target not in ("run", "old", "run_prefix .. prior"):
                continue  # the worker info hash (advertise.lua), not a run record
            args = [a.strip() for a in call.group("rest").split(",")]
            names = args[::2] if call.group(1) == "HSET" else args  # HSET: field, value, …
            for name in (n.strip("'") for n in names if re.fullmatch(r"'[a-z_]+'", n)):
                touched.setdefault(name, set()).add(script.name)
    assert touched, "the pattern found no hash command: fix the test"
    undeclared = {name: sorted(where) for name, where in touched.items() if name not in declared}
    assert not undeclared, undeclared


def test_the_lua_summary_is_the_declared_summary():
    prelude = lua.prelude()
    listed = re.search(r"local function summary_fields\(\) return \{(.*)\} end", prelude)
    assert listed is not None
    assert re.findall(r"'([a-z_]+)'", listed.group(1)) == [
        f.stored for f in SUMMARY_FIELDS if f.stored]
    assert "SUMMARY_FIELDS = {" not in (LUA / "lib.lua").read_text()
