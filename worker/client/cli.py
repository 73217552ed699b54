"""Operator escape hatch: `testruns {list,release,reconcile,check}` (or `python -m worker …`).
`list` shows the workers online (their advertisements) and the slots held.

Not on any request path, so it may SCAN. `release` is recorded on the run as `forced`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from ..core.runs import iso
from ..core.settings import Settings
from ..core.status import ReleaseReason, RunStatus
from ..core.store import RunStore


def slots(store: RunStore) -> list[dict[str, Any]]:
    """Every slot held: its holder, status, age, last heartbeat and lease left."""
    out = []
    now_ms = int(time.time() * 1000)
    for workflow_id in store.workflows_with("slot"):
        holder = store.holders([workflow_id])[workflow_id]
        if not holder:
            continue
        run = store.get(holder)
        out.append({
            "workflow_id": workflow_id,
            "run_id": holder,
            "status": run.status.value if run else None,
            "age_s": round((now_ms - run.created_ms) / 1000, 1) if run and run.created_ms
            else None,
            "last_heartbeat_at": iso(run.heartbeat_ms) if run else None,
            "lease_left_s": (store.slot_ttl_ms(workflow_id) or 0) / 1000,
            "worker": run.worker if run else None,
        })
    return sorted(out, key=lambda s: s["workflow_id"])


def workers(store: RunStore) -> list[dict[str, Any]]:
    """Every worker advertising that it consumes the test-run queue (worker/runner/liveness.py)."""
    out = []
    for found in store.workers():
        started = found.info.get("started_ms")
        seen = found.info.get("seen_ms")
        out.append({
            "hostname": found.hostname,
            "queue": found.info.get("queue"),
            "pid": int(found.info["pid"]) if found.info.get("pid") else None,
            "concurrency": int(found.info["concurrency"]) if found.info.get("concurrency")
            else None,
            "started_at": iso(int(started)) if started else None,
            "last_seen_at": iso(int(seen)) if seen else None,
            "expires_in_s": round(found.seconds_left, 1),
        })
    return sorted(out, key=lambda w: w["hostname"])


def reconcile(store: RunStore) -> dict[str, list[str]]:
    """Free slots whose holder is terminal or gone; settle runs whose slot is gone."""
    freed, settled = [], []
    for workflow_id in store.workflows_with("slot"):
        holder = store.holders([workflow_id])[workflow_id]
        if not holder:
            continue
        run = store.get(holder)
        if (run is None or run.terminal) and store.force_release(
                workflow_id, ReleaseReason.RECLAIMED, expected=holder) == holder:
            freed.append(holder)
    live = (RunStatus.QUEUED, RunStatus.RUNNING)
    for workflow_id in store.workflows_with("runs"):
        for run_id in store.run_ids(workflow_id):
            before = store.connection.redis.hget(store.keys.run(workflow_id, run_id), "status")
            run = store.get(run_id)  # reading settles expired/lost, atomically and once
            if run and before in live and run.terminal:
                settled.append(f"{run_id}: {run.status.value}")
    return {"freed_slots": freed, "settled_runs": settled}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="testruns",
                                     description="Inspect and repair test-run slots.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="workers online, and slots held: holder, age, last "
                                "heartbeat, lease left")
    release = sub.add_parser("release", help="force-free a workflow's slot (recorded)")
    release.add_argument("workflow_id")
    sub.add_parser("reconcile", help="free slots of ended runs; settle runs with no slot")
    sub.add_parser("check", help="check Redis settings that could evict slot keys "
                                 "(exit 1 when they could)")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    store = RunStore(settings)
    if args.command == "list":
        result: Any = {"workers": workers(store), "slots": slots(store)}
    elif args.command == "release":
        holder = store.force_release(args.workflow_id)
        if holder:
            from ..core.celery_app import create_celery
            from .stop import send_stop

            # the record already says cancelled; a stop that cannot be sent is logged
            send_stop(create_celery(settings, fail_fast=True), holder,
                      timeout=settings.io_timeout)
        result = {"workflow_id": args.workflow_id, "released_run_id": holder}
    elif args.command == "reconcile":
        result = reconcile(store)
    else:
        warning = store.eviction_warning()
        result = {"ok": warning is None, "warning": warning}
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 1 if args.command == "check" and not result["ok"] else 0


if __name__ == "__main__":
    sys.exit(main())
