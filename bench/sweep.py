"""A worker's heartbeat sweeps, per beat: every registered workflow (BENCH_WORKFLOWS, 100,000)
checked for a pending run to promote into a lapsed slot and for endings left in its outbox
(worker/runner/upkeep.py, worker/core/webhooks.py), as the heartbeat calls them, against the
same sweeps made the way they were before existing.lua asked which workflows have either: a
promote.lua call and an outbox read for each workflow, one pipeline each. Both over the same
Redis, in turns, with a few workflows holding a slot and a pending run behind it (the outboxes
the first beat empties); medians of wall and CPU ms per beat."""

from __future__ import annotations

import statistics
import time
from typing import Any

from worker.core.celery_app import create_celery
from worker.core.settings import Settings
from worker.core.status import ConflictPolicy
from worker.core.webhooks import Webhooks
from worker.runner import upkeep

from . import workflows

#: workflows with something to sweep: a pending run behind a held slot
BUSY = 10


def _per_workflow(store: Any, hooks: Webhooks, ids: list[str]) -> None:
    """The sweeps as they were: a call or a read for every workflow."""
    promote, keys = store.connection.scripts.promote, store.keys
    pipe = store.connection.redis.pipeline(transaction=False)
    for workflow_id in ids:
        promote.queue(keys, workflow_id, pipe)
    [promote.decode(raw) for raw in pipe.execute()]
    cutoff = int((time.time() - hooks.sweep_grace_s) * 1000)
    pipe = store.connection.redis.pipeline(transaction=False)
    for workflow_id in ids:
        pipe.zrangebyscore(keys.outbox(workflow_id), "-inf", cutoff, start=0, num=100)
    pipe.execute()


def run(config: dict[str, str], rounds: int) -> dict[str, tuple[float, float]]:
    """{label: (wall ms, CPU ms)} per beat."""
    celery = create_celery(Settings.from_env(overrides=config), fail_fast=True)
    store, hooks = celery.store, Webhooks(celery)
    ids = workflows.ids()
    for workflow_id in ids[:BUSY]:
        store.admit(workflow_id, {})
        store.admit(workflow_id, {}, on_conflict=ConflictPolicy.QUEUE)

    def asked() -> None:
        upkeep.sweep(store)
        hooks.sweep_outboxes(ids)

    samples: dict[str, list[tuple[float, float]]] = {"asked first": [], "a call each": []}
    for _ in range(rounds):
        for label, beat in (("asked first", asked),
                            ("a call each", lambda: _per_workflow(store, hooks, ids))):
            wall, cpu = time.perf_counter(), time.process_time()
            beat()
            samples[label].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {label: (statistics.median(s[0] for s in got) * 1000,
                    statistics.median(s[1] for s in got) * 1000)
            for label, got in samples.items()}
