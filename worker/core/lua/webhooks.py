"""The wrappers of the endings outbox and the webhook deliveries (worker/core/webhooks.py
drives them): attach.lua, take_ending.lua and delivery_log.lua on a workflow's keys; the
webhook_*.lua scripts on the deliveries' own hash tag `{_webhooks}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..keys import Keys
from ..status import DeliveryOutcome, RunStatus, WebhookTarget
from .base import LuaScript


class Attach(LuaScript):
    name = "attach"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str,
                 callback_url: str) -> RunStatus | None:
        """Write the run's callback_url; its status (None: no record, nothing written)."""
        status = self._call([keys.run(workflow_id, run_id)], [callback_url])
        return RunStatus(status) if status else None


class TakeEnding(LuaScript):
    name = "take_ending"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, *,
                 operator: bool) -> str | None:
        """None: nothing to deliver (or handed over already); else the run's callback_url
        ('' for none): schedule the deliveries, then take the entry out."""
        reply = self._call([keys.outbox(workflow_id), keys.run(workflow_id, run_id)],
                           [run_id, "1" if operator else "0"])
        return str(reply[1]) if int(reply[0]) else None


class WebhookSchedule(LuaScript):
    name = "webhook_schedule"

    def __call__(self, keys: Keys, webhook_id: str, run_id: str, target: WebhookTarget,
                 url: str, *, token: str, lease_ms: int, retention_s: int) -> bool:
        """True: created, and claimed with `token` (publish its task)."""
        return bool(self._call([keys.webhooks_due(), keys.webhook(webhook_id)],
                               [webhook_id, run_id, target.value, url, token, lease_ms,
                                retention_s]))


class WebhookClaim(LuaScript):
    name = "webhook_claim"

    def __call__(self, keys: Keys, *, lease_ms: int, limit: int,
                 token: str) -> list[tuple[str, str]]:
        """The due deliveries claimed, as (id, token)."""
        flat = self._call([keys.webhooks_due()],
                          [keys.webhook_prefix(), lease_ms, limit, token])
        return list(zip(flat[::2], flat[1::2], strict=True))


@dataclass(frozen=True)
class Attempt:
    """An attempt a task may make: its number, the ending's run, where to, the body kept from
    the first attempt ('' until then)."""

    number: int
    run_id: str
    target: WebhookTarget
    url: str
    body: str


class WebhookBegin(LuaScript):
    name = "webhook_begin"

    def __call__(self, keys: Keys, webhook_id: str, token: str, *,
                 lease_ms: int) -> Attempt | None:
        reply: Any = self._call([keys.webhooks_due(), keys.webhook(webhook_id)],
                                [webhook_id, token, lease_ms])
        if not reply:
            return None
        return Attempt(int(reply[0]), str(reply[1]), WebhookTarget(reply[2]), str(reply[3]),
                       str(reply[4]))


class WebhookEnd(LuaScript):
    name = "webhook_end"

    def __call__(self, keys: Keys, webhook_id: str, attempt: int, outcome: DeliveryOutcome,
                 *, delay_ms: int = 0, body: str = "", kept_s: int = 3600) -> bool:
        """False: `attempt` is no longer the current one (nothing recorded)."""
        return bool(self._call([keys.webhooks_due(), keys.webhook(webhook_id)],
                               [webhook_id, attempt, outcome.value, delay_ms, body, kept_s]))


class DeliveryLog(LuaScript):
    name = "delivery_log"

    def __call__(self, keys: Keys, workflow_id: str, run_id: str, entry_json: str, *,
                 keep: int) -> int:
        """Entries the run's `deliveries` holds now (0: no record)."""
        return int(self._call([keys.run(workflow_id, run_id)], [entry_json, keep]))
