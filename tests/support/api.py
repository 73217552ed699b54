"""Helpers for driving the API in tests: trigger, read, wait for a status, and read what the
test workflows' bodies recorded. Fixtures live in tests/conftest.py; helpers live here."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime
from typing import Any

import redis
from flask.testing import FlaskClient

from tests.support import tracking
from tests.support.procs import TEST_WORKFLOWS, wait_for
from tests.support.workflows import body_log_key
from worker.core.keys import Keys
from worker.core.settings import Settings
from worker.core.status import TERMINAL, RunStatus
from worker.core.store import RunStore

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def parse_time(iso: str) -> datetime:
    """An API timestamp (ISO-8601 UTC with `Z`) as an aware datetime."""
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def ts(iso: str | None) -> float | None:
    """Seconds since the epoch of an API timestamp, or None."""
    return parse_time(iso).timestamp() if iso else None


def keys_of(config: dict[str, str]) -> Keys:
    """The key names of a test's private prefix."""
    return Keys(config["TEST_RUN_KEY_PREFIX"])


def store_of(config: dict[str, str], **overrides: str) -> RunStore:
    """A run store on the test's config (overrides by variable name), to call the scripts
    directly, as the web and the worker do."""
    return RunStore(Settings.from_env(overrides=dict(config, **overrides)))


def expect_status(resp: Any, status: int) -> dict[str, Any]:
    """The JSON body of a test-client response that must have `status`."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    return resp.get_json()


def unique(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


def make_config(**overrides: Any) -> dict[str, str]:
    """Short limits so time-limit paths finish in seconds; a private prefix and queue."""
    name = unique("t")
    config = {
        "REDIS_URL": os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
        "TEST_RUN_KEY_PREFIX": name,
        "TEST_RUN_QUEUE": name,
        "WEBHOOK_QUEUE": f"{name}-webhooks",
        "TEST_RUN_TIME_LIMIT": "3",
        "TEST_RUN_SOFT_TIME_LIMIT": "2",
        "TEST_RUN_QUEUE_TIMEOUT": "30",
        "TEST_RUN_LEASE_GRACE": "2",
        "TEST_RUN_HEARTBEAT_TTL": "3",
        "WORKFLOW_MODULES": TEST_WORKFLOWS,
        **tracking.config_overrides(),  # TEST_TRACKING=cluster: the session's Redis Cluster
    }
    config.update({k: str(v) for k, v in overrides.items()})
    return config


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Every key a test's prefix and queue wrote, kombu's bindings of its queue included."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for kombu in (f"_kombu.binding.{prefix}*", f"_kombu.binding_permanent.{prefix}*"):
        keys += list(client.scan_iter(match=kombu, count=1000))
    keys += [prefix, f"{prefix}-webhooks"]  # the queues (make_config names them so)
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])


def trigger(client: FlaskClient, workflow_id: str, input: dict | None = None,
            expect: int = 202, **kwargs: Any) -> dict[str, Any]:
    body = {"input": input} if input is not None else None
    resp = client.post(f"/api/workflows/{workflow_id}/test-runs", json=body, **kwargs)
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def run_of(client: FlaskClient, run_id: str) -> dict[str, Any]:
    resp = client.get(f"/api/test-runs/{run_id}")
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


def wait_status(client: FlaskClient, run_id: str, statuses: set[RunStatus] | RunStatus,
                timeout: float = 15) -> dict[str, Any]:
    wanted = {statuses} if isinstance(statuses, RunStatus) else set(statuses)
    return wait_for(lambda: (lambda r: r if r["status"] in wanted else None)(
        run_of(client, run_id)), timeout, f"run {run_id} to reach {sorted(wanted)}")


def wait_terminal(client: FlaskClient, run_id: str, timeout: float = 15) -> dict[str, Any]:
    return wait_status(client, run_id, set(TERMINAL), timeout)


def active_run_id(client: FlaskClient, workflow_id: str) -> str | None:
    return client.get(f"/api/workflows/{workflow_id}").get_json()["active_run_id"]


def body_events(redis_client: redis.Redis, config: dict[str, str],
                run_id: str | None = None) -> list[dict[str, Any]]:
    """What the test workflows' bodies recorded (start, end), oldest first."""
    raw = redis_client.lrange(body_log_key(config["TEST_RUN_KEY_PREFIX"]), 0, -1)
    events = [json.loads(x) for x in raw]
    return [e for e in events if run_id is None or e["run_id"] == run_id]
