"""The fused admission's message is what kombu itself pushes (worker/client/message.py).

kombu publishes the run through the two-step path's very call onto the test's private queue;
the test reads it back (LRANGE) and compares it with what MessageBuilder builds for the same
run, field by field and then as text. Only two fields may differ, and they are checked apart:
`properties.delivery_tag` (a fresh uuid per message) and `headers.expires` (now + the queue
timeout, so a few milliseconds apart). A Celery or kombu upgrade that changes the message fails
here, loudly, instead of leaving workers to read fused messages differently."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from uuid import UUID

import pytest

from tests.support.api import expect_status
from web import create_app
from worker.client.message import MessageBuilder, fused
from worker.client.service import TestRunService
from worker.core.celery_app import create_celery
from worker.core.keys import new_run_id
from worker.core.lua import Admitted
from worker.core.settings import Settings

#: fields that differ between two messages of the same run, by design
PER_MESSAGE = {("properties", "delivery_tag"), ("headers", "expires")}


def flat(message: dict, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], object]:
    """Every leaf of a message by its path; the body decoded (base64, then JSON)."""
    out: dict[tuple[str, ...], object] = {}
    for key, value in message.items():
        if isinstance(value, dict) and value:
            out.update(flat(value, (*path, key)))
        else:
            out[(*path, key)] = value
    if not path:
        out[("body",)] = json.loads(base64.b64decode(str(message["body"])))
    return out


def test_the_fused_message_is_what_kombu_pushes(config, redis_client):
    settings = Settings.from_env(overrides=config)
    app = create_celery(settings, fail_fast=True)
    service = TestRunService(app)
    assert service.fused  # the tracking Redis is the broker: this is the fused path's message
    run_id = new_run_id("echo")
    service._publish(Admitted(run_id, 0))  # the two-step path's publish: kombu's own LPUSH
    pushed = redis_client.lrange(settings.queue, 0, -1)
    assert len(pushed) == 1
    builder = MessageBuilder(app, settings)
    assert builder.queue_key == settings.queue  # Channel._q_for_pri of priority 0
    theirs_text, ours_text = pushed[0], builder.build(run_id)
    theirs, ours = json.loads(theirs_text), json.loads(ours_text)

    theirs_flat, ours_flat = flat(theirs), flat(ours)
    assert sorted(ours_flat) == sorted(theirs_flat), "the message's fields changed"
    for field in theirs_flat:
        if field not in PER_MESSAGE:
            assert ours_flat[field] == theirs_flat[field], field
    # the per-message fields: a uuid each, and expiry times the length of the build apart
    UUID(ours["properties"]["delivery_tag"])
    assert ours["properties"]["delivery_tag"] != theirs["properties"]["delivery_tag"]
    apart = (datetime.fromisoformat(ours["headers"]["expires"])
             - datetime.fromisoformat(theirs["headers"]["expires"])).total_seconds()
    assert 0 <= apart < 5, apart
    # and byte for byte, once those two are the same
    for value in (ours["properties"]["delivery_tag"], ours["headers"]["expires"]):
        assert ours_text.count(value) == 1
    same = (ours_text.replace(ours["properties"]["delivery_tag"],
                              theirs["properties"]["delivery_tag"])
            .replace(ours["headers"]["expires"], theirs["headers"]["expires"]))
    assert same == theirs_text


def test_a_fused_trigger_pushes_that_message_in_the_admission(config, redis_client):
    """Through the API: the message is on the queue when the 202 is sent, and it is the run's."""
    client = create_app(config).test_client()
    run = expect_status(client.post("/api/workflows/echo/test-runs"), 202)
    pushed = redis_client.lrange(config["TEST_RUN_QUEUE"], 0, -1)
    assert len(pushed) == 1
    message = json.loads(pushed[0])
    assert message["headers"]["id"] == message["properties"]["correlation_id"] == run["run_id"]
    assert json.loads(base64.b64decode(message["body"]))[0] == [run["run_id"]]
    # a conflict pushes nothing
    expect_status(client.post("/api/workflows/echo/test-runs"), 409)
    assert redis_client.llen(config["TEST_RUN_QUEUE"]) == 1


@pytest.mark.parametrize(("overrides", "expected"), [
    ({}, True),
    ({"CELERY_BROKER_URL": "redis://127.0.0.1:6379"}, True),  # db 0 and the port by default
    ({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/1"}, False),  # another database
    ({"CELERY_BROKER_URL": "redis://127.0.0.1:6380/0"}, False),  # another server
    ({"CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}, False),
    ({"TEST_RUN_FUSED_ADMISSION": "false"}, False),
])
def test_fused_only_when_the_broker_is_the_tracking_redis(overrides, expected):
    settings = Settings.from_env(overrides={"REDIS_URL": "redis://127.0.0.1:6379/0",
                                            **overrides})
    assert fused(settings) is expected


def test_transport_options_that_rename_lists_turn_fusing_off():
    settings = Settings.from_env(overrides={"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert fused(settings, {"visibility_timeout": 10}) is True
    assert fused(settings, {"global_keyprefix": "x:"}) is False


@pytest.mark.broker_matrix
def test_the_lifecycle_suite_runs_both_paths(config, broker):
    """`redis` (the tracking Redis is the broker) is the fused path; `redis-broker` and `amqp`
    the two-step path: the broker_matrix suites exercise both."""
    service = create_app(config).extensions["testruns"]
    assert service.fused is (not broker)
