"""What the live gauges read from Redis when scraped (worker/core/metrics.py's LiveState): slots
held, their holders by status, and the workers online, at a bounded cost."""

from __future__ import annotations

from collections.abc import Iterable

from .store import RunStore


def live_state(store: RunStore, workflow_ids: Iterable[str]) -> tuple[int, dict[str, int], int]:
    """Slots held, holders by status and workers online, for the metrics' gauges: one
    pipeline over the given workflows' slots (plus the workers count), then one over the
    holders' statuses. Bounded by the registered workflows, never a SCAN."""
    client, scripts, keys = store.connection.redis, store.connection.scripts, store.keys
    ids = list(workflow_ids)
    pipe = client.pipeline(transaction=False)
    for workflow_id in ids:
        pipe.get(keys.slot(workflow_id))
    scripts.workers.count(keys, store.settings.queue, client=pipe)
    *holders, online = pipe.execute()
    held = [(w, str(h)) for w, h in zip(ids, holders, strict=True) if h]
    by_status: dict[str, int] = {}
    if held:
        pipe = client.pipeline(transaction=False)
        for workflow_id, holder in held:
            pipe.hget(keys.run(workflow_id, holder), "status")
        for status in pipe.execute():
            if status:
                by_status[str(status)] = by_status.get(str(status), 0) + 1
    return len(held), by_status, int(online[0])
