"""The upkeep of pending runs, from each worker's heartbeat (worker/runner/heartbeat.py).

A slot freed by a script promotes its workflow's pending run in that same step (lib.lua
release()). A slot whose lease *lapses* — its worker died, a promoted run's publish never
happened — is freed by Redis, and no script runs then; so every heartbeat sweeps the registered
workflows (promote.lua, one call each, a no-op without a pending run): a lapsed slot passes to
its pending run within a heartbeat interval, and a pending run past TEST_RUN_PENDING_TIMEOUT ends
`expired`. A run promoted here whose message was not stored is published by this process
(`RunStore.publisher`). Any worker may do it, and two at once are harmless (each step is atomic).
"""

from __future__ import annotations

import logging

from .. import workflows
from ..core.store import RunStore

logger = logging.getLogger(__name__)


def sweep(store: RunStore) -> list[str]:
    """One pass over the registered workflows (one pipelined round trip); the runs it
    promoted."""
    promoted = []
    try:
        for done in store.upkeep(w.id for w in workflows.all_workflows()):
            if done.promoted:
                logger.info("test run %s promoted into a lapsed slot", done.promoted)
                promoted.append(done.promoted)
    except Exception as exc:  # noqa: BLE001 - Redis away: the next beat sweeps again
        logger.warning("pending-run upkeep failed (%s); retrying at the next beat", exc)
    return promoted
