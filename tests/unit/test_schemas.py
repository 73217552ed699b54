"""Request parsing, without Redis: what a trigger body, its query and headers may hold."""

from __future__ import annotations

import pytest
from flask import Flask

from web import schemas
from worker.errors import InvalidRequest
from worker.status import ConflictPolicy

app = Flask(__name__)


def parse(data: bytes | None = None, query: str = "", headers: dict | None = None):
    with app.test_request_context(f"/x{query}", method="POST", data=data,
                                  headers=headers or {}, content_type="application/json"):
        from flask import request

        return schemas.trigger_request(request)


def test_an_empty_body_is_an_empty_input_rejecting_conflicts():
    body = parse()
    assert (body.input, body.on_conflict, body.idempotency_key) == (
        {}, ConflictPolicy.REJECT, None)


def test_input_policy_and_key_are_read():
    body = parse(b'{"input": {"a": [1]}}', "?on_conflict=replace", {"Idempotency-Key": "k1"})
    assert (body.input, body.on_conflict, body.idempotency_key) == (
        {"a": [1]}, ConflictPolicy.REPLACE, "k1")


@pytest.mark.parametrize("data, query, headers, field", [
    (b"{", "", {}, None),
    (b'{"input": [1]}', "", {}, "input"),
    (b'{"other": 1}', "", {}, None),
    (b'{"input": {"x": NaN}}', "", {}, None),
    (b"{}", "?on_conflict=later", {}, "on_conflict"),
    (b"{}", "", {"Idempotency-Key": "x" * 256}, "Idempotency-Key"),
    (b"{}", "", {"Idempotency-Key": "tab\there"}, "Idempotency-Key"),
])
def test_bad_requests_name_what_is_wrong(data, query, headers, field):
    with pytest.raises(InvalidRequest) as info:
        parse(data, query, headers)
    assert info.value.code == "invalid_request"
    assert info.value.data.get("field") == field


@pytest.mark.parametrize("raw, limit", [(None, 20), ("1", 1), ("100", 100)])
def test_list_limit(raw, limit):
    with app.test_request_context("/x" + (f"?limit={raw}" if raw else "")):
        from flask import request

        assert schemas.list_limit(request) == limit


@pytest.mark.parametrize("raw", ["0", "101", "-1", "ten", ""])
def test_bad_list_limits(raw):
    with app.test_request_context(f"/x?limit={raw}"), pytest.raises(InvalidRequest):
        from flask import request

        schemas.list_limit(request)


@pytest.mark.parametrize("raw", ["-x", "a b", "a" * 129])
def test_bad_workflow_ids(raw):
    with pytest.raises(InvalidRequest):
        schemas.workflow_id(raw)
