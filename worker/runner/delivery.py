"""One webhook attempt, inside a worker (the task on WEBHOOK_QUEUE; the Redis side, and why
retries are not Celery countdowns, is worker/core/webhooks.py).

The attempt is signed per Standard Webhooks (`standardwebhooks`: `webhook-id`,
`webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`), the
same `webhook-id` and body on every attempt. A caller's callback_url is checked again first
(worker/core/egress.py: DNS can change since the trigger) and the connection goes to the very
addresses that check returned, the name never resolved twice; TLS still verifies the
certificate against the host name. Redirects are not followed (http.client never does): a 3xx
ends the delivery. Each step waits at most WEBHOOK_TIMEOUT, and the task's time limit bounds the
whole attempt, so a slow receiver holds a pool process only briefly.

Outcome: a 2xx is delivered; a timeout, a connection error, a 5xx or 429 is retried (until
WEBHOOK_MAX_ATTEMPTS); any other answer ends it. Each attempt is recorded on its run
(`deliveries`) and raised as `webhook_attempted` (logged, counted).
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
from datetime import UTC, datetime

from standardwebhooks import Webhook

from ..core import egress
from ..core.status import DeliveryOutcome, WebhookTarget
from ..core.webhooks import Webhooks

logger = logging.getLogger(__name__)

USER_AGENT = "workflow-test-runs-webhooks/1"
#: addresses of one name tried at most per attempt (each with its own connect timeout)
MAX_ADDRESSES = 2


def attempt(webhooks: Webhooks, wid: str, token: str) -> DeliveryOutcome | None:
    """Make one attempt of delivery `wid`, if `token` still claims it (else None)."""
    current = webhooks.begin(wid, token)
    if current is None:
        return None  # claimed again since, or done: a duplicate message
    body = current.body or webhooks.body(current.run_id) or ""
    code: int | None = None
    error: str | None = "the run's record is gone"
    outcome = DeliveryOutcome.GAVE_UP
    if body:
        outcome, code, error = _post(webhooks, wid, current.target, current.url, body)
    if outcome is DeliveryOutcome.RETRYING and current.number >= \
            webhooks.settings.webhook_max_attempts:
        outcome = DeliveryOutcome.GAVE_UP
    webhooks.end(wid, current, outcome, body)
    webhooks.log(wid, current, outcome, status_code=code, error=error)
    return outcome


def _post(webhooks: Webhooks, wid: str, target_kind: WebhookTarget, url: str,
          body: str) -> tuple[DeliveryOutcome, int | None, str | None]:
    settings = webhooks.settings
    try:
        target = egress.target(url, allowed_hosts=settings.webhook_allowed_hosts,
                               guard=target_kind is WebhookTarget.CALLBACK_URL)
    except egress.Unresolvable as exc:
        return DeliveryOutcome.RETRYING, None, str(exc)
    except egress.EgressRefused as exc:
        return DeliveryOutcome.REFUSED, None, str(exc)
    assert settings.webhook_secret is not None  # no secret: nothing is scheduled
    now = datetime.now(UTC)
    headers = {
        "Host": _host_header(target),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": wid,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(settings.webhook_secret).sign(wid, now, body),
    }
    try:
        status = send(target, body.encode(), headers, settings.webhook_timeout)
    except Exception as exc:  # noqa: BLE001 - a timeout, a refused or reset connection, TLS
        return DeliveryOutcome.RETRYING, None, f"{type(exc).__name__}: {exc}"[:300]
    if 200 <= status < 300:
        return DeliveryOutcome.DELIVERED, status, None
    if status >= 500 or status == 429:
        return DeliveryOutcome.RETRYING, status, None
    return DeliveryOutcome.GAVE_UP, status, None


def _host_header(target: egress.Target) -> str:
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = 443 if target.scheme == "https" else 80
    return host if target.port == default else f"{host}:{target.port}"


def send(target: egress.Target, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` to a checked target, connecting to its checked addresses only; the answer's
    status code (its body is not read beyond a little)."""
    sock = _connect(target, timeout)
    conn = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
    conn.sock = sock  # http.client uses it as is and never connects (nor resolves) itself
    try:
        if target.scheme == "https":
            context = ssl.create_default_context()
            conn.sock = context.wrap_socket(sock, server_hostname=target.host)
        conn.request("POST", target.request_path, body=body, headers=headers)
        response = conn.getresponse()
        response.read(4096)
        return response.status
    finally:
        conn.close()


def _connect(target: egress.Target, timeout: float) -> socket.socket:
    error: OSError | None = None
    for address in target.addresses[:MAX_ADDRESSES]:
        try:
            sock = socket.create_connection((address, target.port), timeout=timeout)
        except OSError as exc:
            error = exc
            continue
        sock.settimeout(timeout)
        return sock
    raise error or OSError("no address to connect to")
