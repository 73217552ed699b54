"""Operator escape hatch: `python -m worker {list,release,reconcile,check}`.

Not on any request path, so it may SCAN. `release` is recorded on the run as `forced`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

from .runs import iso
from .settings import Settings
from .status import ReleaseReason
from .tracker import Tracker


def _scan(tracker: Tracker, kind: str) -> Iterator[tuple[str, str]]:
    """(key, workflow id) of every key of `kind`; other keys that match the glob are skipped."""
    for key in tracker.redis.scan_iter(match=tracker.keys.scan_pattern(kind), count=1000):
        workflow_id = tracker.keys.workflow_in(str(key), kind)
        if workflow_id is not None:
            yield str(key), workflow_id


def _holder(tracker: Tracker, key: str) -> str | None:
    holder = tracker.redis.get(key)
    return str(holder) if holder else None


def slots(tracker: Tracker) -> list[dict[str, Any]]:
    out = []
    now_ms = int(time.time() * 1000)
    for key, wf in _scan(tracker, "slot"):
        holder = _holder(tracker, key)
        if not holder:
            continue
        run = tracker.get(holder)
        out.append({
            "workflow_id": wf,
            "run_id": holder,
            "status": run.status.value if run else None,
            "age_s": round((now_ms - run.created_ms) / 1000, 1) if run and run.created_ms
            else None,
            "last_heartbeat_at": iso(run.heartbeat_ms) if run else None,
            "lease_left_s": (tracker.slot_ttl_ms(wf) or 0) / 1000,
            "worker": run.worker if run else None,
        })
    return sorted(out, key=lambda s: s["workflow_id"])


def reconcile(tracker: Tracker) -> dict[str, list[str]]:
    """Free slots whose holder is terminal or gone; settle runs whose slot is gone."""
    freed, settled = [], []
    for key, wf in _scan(tracker, "slot"):
        holder = _holder(tracker, key)
        if not holder:
            continue
        run = tracker.get(holder)
        if (run is None or run.terminal) and \
                tracker.force_release(wf, ReleaseReason.RECLAIMED, expected=holder) == holder:
            freed.append(holder)
    for key, wf in _scan(tracker, "runs"):
        for rid in map(str, tracker.redis.zrange(key, 0, -1)):
            before = tracker.redis.hget(tracker.keys.run(wf, rid), "status")
            run = tracker.get(rid)  # reading derives expired/lost, atomically and once
            if run and before in ("queued", "running") and run.terminal:
                settled.append(f"{rid}: {run.status.value}")
    return {"freed_slots": freed, "settled_runs": settled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker",
                                     description="Inspect and repair test-run slots.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="slots held: holder, age, last heartbeat, lease left")
    release = sub.add_parser("release", help="force-free a workflow's slot (recorded)")
    release.add_argument("workflow_id")
    sub.add_parser("reconcile", help="free slots of ended runs; settle runs with no slot")
    sub.add_parser("check", help="check Redis settings that could evict slot keys "
                                 "(exit 1 when they could)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    tracker = Tracker(settings)
    if args.command == "list":
        result: Any = {"slots": slots(tracker)}
    elif args.command == "release":
        holder = tracker.force_release(args.workflow_id)
        if holder:
            from .app import create_celery

            try:
                create_celery(settings, fail_fast=True).control.revoke(
                    holder, terminate=True, signal="SIGKILL")
            except Exception as exc:  # noqa: BLE001 - the record already says cancelled
                print(f"revoke not sent: {exc}", file=sys.stderr)
        result = {"workflow_id": args.workflow_id, "released_run_id": holder}
    elif args.command == "reconcile":
        result = reconcile(tracker)
    else:
        warning = tracker.eviction_warning()
        result = {"ok": warning is None, "warning": warning}
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if args.command == "check" and not result["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
