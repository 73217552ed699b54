"""Completion webhooks, the Redis side: every run's ending handed to its deliveries, each
delivered at least once by a Celery task (worker/runner/delivery.py makes the HTTP attempt).

How an ending reaches a receiver, and why nothing is lost on the way:

1. Every script that ends a run also notes the ending in its workflow's outbox, in the same
   atomic step (lib.lua's note_ending): an ending cannot happen without it.
2. The process that recorded the ending raises the lifecycle's `finished`; `WebhookHooks`
   hands it over right then (`hand_over`): one delivery per target (WEBHOOK_URL, the run's
   callback_url) is created in Redis, claimed, and its task published; then the outbox entry is
   taken out. A process that dies in between leaves the entry: a worker's heartbeat sweeps
   entries older than `sweep_grace_s` (`sweep_outboxes`), and so does `testruns reconcile`.
   Creating a delivery is idempotent (its id is the run's and the target's), so a sweep that
   repeats a hand-over delivers nothing twice.
3. Retries are not Celery countdowns: with the Redis broker an ETA message waits in the
   consuming worker's memory (lost with it) and comes back as a duplicate once it outlives the
   visibility timeout. A delivery instead sits in a due index (`{_webhooks}:due`, by time) and a
   worker's heartbeat, which already runs every interval, claims what is due and publishes its
   task (`claim_due`). A claim lapses (CLAIM_LEASE) if its task never runs, so a lost message
   or a dead worker only delays a delivery; a token per claim keeps a duplicate message from
   making a second attempt.

A run's outcome and slot never wait on any of it: the hand-over is a few Redis commands and
a publish after the ending was recorded, and the attempt runs on its own queue.
"""

from __future__ import annotations

import json
import logging
import random
import secrets
import time
from typing import Any

from . import egress
from .celery_app import WEBHOOK_TASK, TestRunCelery
from .errors import InvalidCallbackUrl
from .keys import workflow_of
from .lifecycle import LifecycleHooks, lifecycle
from .lua import Attempt
from .runs import Run, iso
from .status import DeliveryOutcome, ErrorType, RunStatus, WebhookTarget

logger = logging.getLogger(__name__)

#: the Standard Webhooks event type of a run's ending
EVENT_TYPE = "test_run.finished"
#: deliveries claimed, and outbox entries taken, per sweep
SWEEP_LIMIT = 100
#: a delivery done is kept this long (no body): a late sweep of its ending finds it done
DONE_KEPT_S = 3600


def webhook_id(run_id: str, target: WebhookTarget) -> str:
    """The `webhook-id` of every attempt of one ending to one target."""
    return f"{run_id}.{target.value}"


def envelope(run: Run) -> str:
    """The body: `{"type", "timestamp", "data": <the run as GET returns it>}` (without its
    `deliveries`, which the delivery itself changes), as compact JSON."""
    data = {k: v for k, v in run.to_dict().items() if k != "deliveries"}
    return json.dumps({"type": EVENT_TYPE, "timestamp": iso(run.finished_ms), "data": data},
                      separators=(",", ":"), ensure_ascii=False)


class Webhooks:
    """One app's deliveries (its store's keys, its settings, its Celery app to publish)."""

    def __init__(self, celery: TestRunCelery) -> None:
        self.celery = celery
        self.store = celery.store
        self.settings = celery.settings

    @property
    def enabled(self) -> bool:
        """No secret, no webhooks (a callback_url is refused at the trigger then)."""
        return self.settings.webhook_secret is not None

    # -- timing -------------------------------------------------------------------------------
    @property
    def attempt_limit_s(self) -> float:
        """An attempt's hard time limit (its task's): connect, send, answer, and some."""
        return 4 * self.settings.webhook_timeout + 5

    @property
    def attempt_lease_ms(self) -> int:
        """An attempt not ended by then (its process died) falls due again."""
        return int((self.attempt_limit_s + 10) * 1000)

    @property
    def claim_lease_ms(self) -> int:
        """A claimed delivery whose task has not begun by then is claimed again."""
        return max(60_000, 2 * self.attempt_lease_ms)

    @property
    def sweep_grace_s(self) -> float:
        """An outbox entry this old was missed by its process (a hand-over takes milliseconds;
        three heartbeat intervals leave room for a slow one): the heartbeat's sweep takes it."""
        return 3 * self.settings.heartbeat_interval

    def retry_delay_s(self, attempt: int) -> float:
        """After attempt `attempt` failed: WEBHOOK_RETRY_DELAY, doubling, times 1–2 (jitter)."""
        return self.settings.webhook_retry_delay * 2 ** (attempt - 1) * (1 + random.random())

    def check_callback(self, url: str) -> None:
        """A trigger's callback_url, through the SSRF guard (worker/core/egress.py); each
        delivery checks it again. Raises InvalidCallbackUrl."""
        if not self.enabled:
            raise InvalidCallbackUrl("this service signs no webhooks (WEBHOOK_SECRET is unset)")
        try:
            egress.target(url, allowed_hosts=self.settings.webhook_allowed_hosts, guard=True)
        except egress.EgressRefused as exc:
            raise InvalidCallbackUrl(str(exc)) from None

    # -- handing endings over -----------------------------------------------------------------
    def hand_over(self, run_id: str) -> int:
        """Create (and publish) the deliveries of `run_id`'s ending, noted in its outbox, then
        take it out; how many were created. Idempotent."""
        workflow_id = workflow_of(run_id)
        if workflow_id is None:
            return 0
        scripts, keys = self.store.connection.scripts, self.store.keys
        if not self.enabled:  # nothing is sent (the sweep drops the entry)
            return 0
        operator = self.settings.webhook_url is not None
        callback = scripts.take_ending(keys, workflow_id, run_id, operator=operator)
        if callback is None:
            return 0
        targets: list[tuple[WebhookTarget, str]] = []
        if self.settings.webhook_url:
            targets.append((WebhookTarget.WEBHOOK_URL, self.settings.webhook_url))
        if callback:
            targets.append((WebhookTarget.CALLBACK_URL, callback))
        created = self.schedule(run_id, targets)
        self.store.connection.redis.zrem(keys.outbox(workflow_id), run_id)
        return created

    def attach(self, run_id: str, callback_url: str) -> None:
        """Give a just-admitted run its callback_url. A run that ended before this (replaced
        by another caller at once) had its ending handed over without it: deliver it now."""
        workflow_id = workflow_of(run_id) or ""
        status = self.store.connection.scripts.attach(self.store.keys, workflow_id, run_id,
                                                      callback_url)
        if status is not None and status.terminal:
            self.schedule(run_id, [(WebhookTarget.CALLBACK_URL, callback_url)])

    def schedule(self, run_id: str, targets: list[tuple[WebhookTarget, str]]) -> int:
        created = 0
        for target, url in targets:
            wid, token = webhook_id(run_id, target), secrets.token_hex(8)
            if self.store.connection.scripts.webhook_schedule(
                    self.store.keys, wid, run_id, target, url, token=token,
                    lease_ms=self.claim_lease_ms, retention_s=self.settings.retention):
                created += 1
                self.publish(wid, token)
        return created

    def publish(self, wid: str, token: str) -> None:
        """Send a claimed delivery's task; if that fails its claim lapses and a sweep sends
        it again, so this never raises."""
        try:
            self.celery.send_task(WEBHOOK_TASK, args=[wid, token],
                                  queue=self.settings.webhook_queue, ignore_result=True,
                                  retry=False)
        except Exception as exc:  # noqa: BLE001 - the due index still has it
            logger.warning("webhook %s: could not publish its task (%s); a sweep retries",
                           wid, exc)

    # -- sweeps (a worker's heartbeat; reconcile) ---------------------------------------------
    def claim_due(self) -> int:
        """Publish the tasks of the deliveries that are due; how many."""
        claimed = self.store.connection.scripts.webhook_claim(
            self.store.keys, lease_ms=self.claim_lease_ms, limit=SWEEP_LIMIT,
            token=secrets.token_hex(8))
        for wid, token in claimed:
            self.publish(wid, token)
        return len(claimed)

    def sweep_outboxes(self, workflow_ids: list[str], *, everything: bool = False) -> list[str]:
        """Hand over the endings left in these workflows' outboxes (those noted at least
        `sweep_grace_s` ago, so a hand-over in progress is left to its process; `everything`:
        all, for reconcile); the run ids handed over. With webhooks off they are dropped."""
        redis, keys = self.store.connection.redis, self.store.keys
        cutoff = "+inf" if everything else int((time.time() - self.sweep_grace_s) * 1000)
        # only the workflows with an outbox (existing.lua): a read each was seconds a beat
        workflow_ids = self.store.connection.scripts.existing.which(workflow_ids, keys.outbox)
        pipe = redis.pipeline(transaction=False)
        for workflow_id in workflow_ids:
            pipe.zrangebyscore(keys.outbox(workflow_id), "-inf", cutoff, start=0,
                               num=SWEEP_LIMIT)
        found = [str(r) for ids in pipe.execute() for r in ids]
        if not self.enabled:  # nothing is sent: the endings are not kept for later either
            if found:  # one round trip for them all, not one per run
                drop = redis.pipeline(transaction=False)
                for run_id in found:
                    drop.zrem(keys.outbox(workflow_of(run_id) or ""), run_id)
                drop.execute()
            return []
        for run_id in found:
            self.hand_over(run_id)
        return found

    # -- one attempt (the delivery task) ------------------------------------------------------
    def begin(self, wid: str, token: str) -> Attempt | None:
        return self.store.connection.scripts.webhook_begin(
            self.store.keys, wid, token, lease_ms=self.attempt_lease_ms)

    def body(self, run_id: str) -> str | None:
        """The envelope of the run's ending (None: its record is gone)."""
        run = self.store.get(run_id)
        return envelope(run) if run is not None and run.terminal else None

    def end(self, wid: str, attempt: Attempt, outcome: DeliveryOutcome, body: str) -> float:
        """Record the attempt's outcome; the seconds until the retry (RETRYING), else 0."""
        delay = self.retry_delay_s(attempt.number) if outcome is DeliveryOutcome.RETRYING else 0
        self.store.connection.scripts.webhook_end(
            self.store.keys, wid, attempt.number, outcome, delay_ms=int(delay * 1000),
            body=body, kept_s=DONE_KEPT_S)
        return delay

    def log(self, wid: str, attempt: Attempt, outcome: DeliveryOutcome, *,
            status_code: int | None, error: str | None) -> None:
        """The attempt on its run's `deliveries`, and raised as `webhook_attempted`."""
        workflow_id = workflow_of(attempt.run_id) or ""
        entry: dict[str, Any] = {
            "webhook_id": wid, "target": attempt.target.value, "attempt": attempt.number,
            "at": iso(int(time.time() * 1000)), "status_code": status_code, "error": error,
            "outcome": outcome.value}
        self.store.connection.scripts.delivery_log(
            self.store.keys, workflow_id, attempt.run_id, json.dumps(entry),
            keep=2 * self.settings.webhook_max_attempts)
        lifecycle.webhook_attempted(attempt.run_id, workflow_id, attempt.target,
                                    attempt.number, outcome, status_code=status_code,
                                    error=error)


class WebhookHooks(LifecycleHooks):
    """The lifecycle subscriber: each ending, in whichever process records it, is handed
    over at once (a new kind of ending reaches the webhooks with no change here)."""

    def __init__(self) -> None:
        self.webhooks: Webhooks | None = None

    def finished(self, run_id: str, workflow_id: str, status: RunStatus,
                 error_type: ErrorType | None, *, duration_s: float | None = None) -> None:
        if self.webhooks is not None and self.webhooks.enabled:
            self.webhooks.hand_over(run_id)


#: the one subscriber per process, bound to the process's app by `install`
HOOKS = WebhookHooks()


def install(celery: TestRunCelery) -> Webhooks:
    """Hand this process's endings over through `celery`'s store and broker (the web, the
    worker and the CLI each call it once at start; the last call wins)."""
    webhooks = Webhooks(celery)
    HOOKS.webhooks = webhooks
    lifecycle.subscribe(HOOKS)
    return webhooks
