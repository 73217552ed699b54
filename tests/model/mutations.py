"""The mutation check (`make mutations`): each deliberate breakage of a script, applied one at a
time, must make the slot machine fail within the CI settings; every file is put back after
each, also when interrupted. Prints one line a breakage and exits 1 if any went unnoticed.
The breakages are made in a copy of the tree (worker/, tests/ and what they import), never in
the checkout itself: a commit made while it ran once took a broken lib.lua with it.

    python -m tests.model.mutations            # needs nothing running: the machine starts
                                               # its own private Redis
    python -m tests.model.mutations reclaim    # only the breakages whose name has "reclaim"
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: what the copy leaves out: the environment, history and caches
NOT_COPIED = shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.pyc", ".pytest_cache",
                                   ".ruff_cache", ".mypy_cache", "node_modules")

#: name → (script, exact text, its broken replacement)
MUTATIONS: dict[str, tuple[str, str, str]] = {
    "release without the owner check": (
        "lib.lua", "if redis.call('GET', slot) == run_id then\n    redis.call('DEL', slot)",
        "if redis.call('EXISTS', slot) == 1 then\n    redis.call('DEL', slot)"),
    "admit without the terminal-holder reclaim": (
        "admit.lua", "if (not status) or (TERMINAL[status] and not status_stopping[2]) then",
        "if false then"),
    "start without the queue-timeout check": (
        "start.lua", "if now - created > queue_timeout_ms then", "if false then"),
    "heartbeat renewing for a stranger process": (
        "heartbeat.lua",
        "if redis.call('HGET', run, 'worker') ~= worker or redis.call('HGET', run, 'pid') ~= pid"
        " then", "if false then"),
    "finish that overwrites a terminal status": (
        "finish.lua", "if current and TERMINAL[current] then", "if false then"),
    # the pending run (on_conflict=queue) and strict single-flight
    "release that does not promote the pending run": (
        "lib.lua", "    promote(slot, now)\n    return 1", "    return 1"),
    "promotion that ignores the pending timeout": (
        "lib.lua", "if now > tonumber(p[2] or '0') then", "if false then"),
    "queue trigger that leaves the older pending run pending": (
        "admit.lua", "if waiting then superseded = supersede(waiting) end", "superseded = ''"),
    "cancel that frees a running run's slot before its body stopped": (
        "finish.lua", "if mode == FINISH_MODE.CANCEL and current == STATUS.RUNNING then",
        "if false then"),
    "lazy reject that reclaims an ended holder without the message": (
        "admit.lua", "if (not held[1]) or (TERMINAL[held[1]] and not held[2]) then return",
        "if false then return"),
    "replace that takes a running holder's slot at once": (
        "admit.lua", "if on_conflict == POLICY.REPLACE and h[1] == STATUS.QUEUED then",
        "if on_conflict == POLICY.REPLACE then"),
}


def caught(tree: Path, name: str, script: str, text: str,
           broken: str) -> tuple[bool, float]:
    """Whether the slot machine, run in `tree` (a copy), fails with `text` broken."""
    path = tree / "worker" / "core" / "lua" / script
    original = path.read_text()
    assert original.count(text) == 1, f"{name}: the text to break is not in {script} once"
    path.write_text(original.replace(text, broken))
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/model/test_slot_machine.py", "-q", "-x",
             "-p", "no:cacheprovider"],
            cwd=tree, env=dict(os.environ, MODEL_PROFILE="ci", MODEL_NO_SHRINK="1",
                               PYTHONPATH=str(tree)),
            capture_output=True, text=True)
    finally:
        path.write_text(original)
    out = proc.stdout + proc.stderr
    # caught = the machine printed the steps of a failing case: not a timeout or a crash
    found = proc.returncode != 0 and "state = SlotMachine()" in out and "Timeout" not in out
    if proc.returncode != 0 and not found:
        print(out[-3000:], file=sys.stderr)
    return found, time.monotonic() - started


def main() -> int:
    missed = []
    only = sys.argv[1:]  # names (or parts of names) to try; all by default
    with tempfile.TemporaryDirectory(prefix="mutations-") as tmp:
        tree = Path(tmp) / "tree"
        shutil.copytree(ROOT, tree, ignore=NOT_COPIED)
        for name, (script, text, broken) in MUTATIONS.items():
            if only and not any(part in name for part in only):
                continue
            found, seconds = caught(tree, name, script, text, broken)
            print(f"{'caught' if found else 'MISSED'}  {name} ({script}, {seconds:.0f}s)",
                  flush=True)
            if not found:
                missed.append(name)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
