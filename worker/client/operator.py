"""The operator's view and repairs, for the CLI (worker/client/cli.py): the slots held, the
workers online, one worker's liveness, a forced release, reconcile, the eviction check.

Not on any request path, so it may SCAN: the scan over a prefix's keys (`workflows_with`) and
the other operator reads (`run_ids`, `slot_ttl_ms`) live here, on the store's client, not in
the run store. Every change still goes through a store method (one script call).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from ..core.runs import iso
from ..core.status import ReleaseReason, RunStatus
from ..core.store import RunStore
from ..core.webhooks import Webhooks


# -- the scan -------------------------------------------------------------------------------------
def workflows_with(store: RunStore, kind: str) -> Iterator[str]:
    """Every workflow that has a key of `kind` (`slot`, `runs`). Operator use only: it
    SCANs, which no request path may do."""
    client = store.connection.redis
    for key in client.scan_iter(match=store.keys.scan_pattern(kind), count=1000):
        workflow_id = store.keys.workflow_in(str(key), kind)
        if workflow_id is not None:
            yield workflow_id


def run_ids(store: RunStore, workflow_id: str) -> list[str]:
    """Every retained run id of a workflow, oldest first."""
    client = store.connection.redis
    return [str(r) for r in client.zrange(store.keys.index(workflow_id), 0, -1)]


def slot_ttl_ms(store: RunStore, workflow_id: str) -> int | None:
    """What is left of the slot's lease (None: no slot, or no expiry)."""
    ttl = store.connection.redis.pttl(store.keys.slot(workflow_id))
    return ttl if ttl and ttl > 0 else None


# -- the commands ---------------------------------------------------------------------------------
def slots(store: RunStore) -> list[dict[str, Any]]:
    """Every slot held (or with a run pending): its holder, status, age, last heartbeat, lease
    left, and the pending run."""
    out: list[dict[str, Any]] = []
    now_ms = int(time.time() * 1000)
    for workflow_id in sorted(set(workflows_with(store, "slot"))
                              | set(workflows_with(store, "waiting"))):
        holder, waiting = store.slots([workflow_id])[workflow_id]
        pending = store.get(waiting) if waiting else None
        pending_out: dict[str, Any] | None = None
        if pending is not None and not pending.terminal:
            pending_out = {"run_id": pending.run_id, "status": pending.status.value,
                           "age_s": round((now_ms - (pending.created_ms or now_ms)) / 1000, 1)}
        if not holder:
            if pending_out:
                out.append({"workflow_id": workflow_id, "run_id": None, "status": None,
                            "pending_run": pending_out})
            continue
        run = store.get(holder)
        out.append({
            "workflow_id": workflow_id,
            "run_id": holder,
            "status": run.status.value if run else None,
            "age_s": round((now_ms - run.created_ms) / 1000, 1) if run and run.created_ms
            else None,
            "last_heartbeat_at": iso(run.heartbeat_ms) if run else None,
            "lease_left_s": (slot_ttl_ms(store, workflow_id) or 0) / 1000,
            "worker": run.worker if run else None,
            "pending_run": pending_out,
        })
    return sorted(out, key=lambda s: s["workflow_id"])


def workers(store: RunStore) -> list[dict[str, Any]]:
    """Every worker advertising that it consumes the test-run queue
    (worker/runner/liveness.py)."""
    out = []
    scripts = store.connection.scripts
    for found in scripts.workers.list(store.keys, store.settings.queue):
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


def alive(store: RunStore, hostname: str) -> dict[str, Any]:
    """A liveness probe for one worker: is its advertisement current (one script call, no
    broker round trip)? `alive` is None when Redis cannot be read: an outage of Redis is not
    the worker's fault, and a probe must not restart every worker for it."""
    try:
        found = {w.hostname: w for w in store.connection.scripts.workers.list(
            store.keys, store.settings.queue)}
    except Exception as exc:  # noqa: BLE001 - unreachable, timed out: cannot tell
        return {"hostname": hostname, "alive": None, "why": f"redis: {type(exc).__name__}"}
    worker = found.get(hostname)
    return {"hostname": hostname, "alive": worker is not None,
            "expires_in_s": round(worker.seconds_left, 1) if worker else None}


def release(store: RunStore, workflow_id: str) -> dict[str, Any]:
    """Force-free a workflow's slot (recorded on its holder as cancelled, `forced`), then send
    the holder's process a stop."""
    holder = store.force_release(workflow_id)
    if holder:
        from ..core.celery_app import create_celery
        from .stop import send_stop

        # the record already says cancelled; a stop that cannot be sent is logged
        settings = store.settings
        send_stop(create_celery(settings, fail_fast=True), holder, timeout=settings.io_timeout)
    return {"workflow_id": workflow_id, "released_run_id": holder}


def reconcile(store: RunStore, webhooks: Webhooks | None = None) -> dict[str, list[str]]:
    """Free slots whose holder is terminal or gone (never one whose body may still be
    stopping); promote pending runs into free slots, and publish a promoted run whose publish a
    crash cut off (`publish_due`, its promotion half done); settle runs whose slot is gone;
    hand over the endings left in the outboxes (a process died before it handed them to the
    webhooks: worker/core/webhooks.py)."""
    freed, settled, promoted, republished = [], [], [], []
    for workflow_id in workflows_with(store, "slot"):
        holder = store.holders([workflow_id])[workflow_id]
        if not holder:
            continue
        run = store.get(holder)
        if (run is None or run.terminal) and store.force_release(
                workflow_id, ReleaseReason.RECLAIMED, expected=holder) == holder:
            freed.append(holder)
    for done in store.upkeep(workflows_with(store, "waiting")):
        if done.promoted:
            promoted.append(done.promoted)
        if done.expired:
            settled.append(f"{done.expired}: expired")
    redis = store.connection.redis
    for workflow_id in workflows_with(store, "runs"):
        for run_id in run_ids(store, workflow_id):
            # reading settles expired/lost, atomically and once; the read says if it did
            snap = store.snapshot(run_id)
            if snap is not None and snap.settled:
                settled.append(f"{run_id}: {snap.run.status.value}")
            elif (snap is not None and snap.run.status is RunStatus.QUEUED
                  and run_id not in promoted and store.publisher is not None
                  and redis.hget(store.keys.run(workflow_id, run_id), "publish_due")):
                store.publisher(run_id)  # a second delivery, if any, is refused at its start
                republished.append(run_id)
    handed: list[str] = []
    if webhooks is not None:
        handed = webhooks.sweep_outboxes(list(workflows_with(store, "ended")), everything=True)
    return {"freed_slots": freed, "promoted_runs": promoted, "republished_runs": republished,
            "settled_runs": settled, "endings_handed_over": handed}


def check(store: RunStore) -> dict[str, Any]:
    """Whether Redis' settings could evict slot keys (`ok`: they cannot)."""
    warning = store.eviction_warning()
    return {"ok": warning is None, "warning": warning}
