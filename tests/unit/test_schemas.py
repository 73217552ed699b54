"""The request and response models, without Redis: what a trigger body, its query and headers
may hold (the body's JSON is read by `parse_json_body`, the rest by the models), and that every
error class has exactly one body model, which takes its code from the class and fits the body
the renderer gives."""

from __future__ import annotations

import gc

import pytest
from flask import Flask
from pydantic import ValidationError

from tests.support.errors import SAMPLES, every_error
from web import schemas
from web.errors import render
from web.problems import InvalidRequest
from worker.core.runs import Run
from worker.core.settings import Settings
from worker.core.status import ConflictPolicy, RunStatus

DEPTH = Settings.max_input_depth


def trigger(data: bytes = b"", query: dict | None = None, headers: dict | None = None):
    """What the trigger route is handed: body, query and headers, each validated."""
    try:
        body = schemas.TriggerBody.model_validate(schemas.parse_json_body(data, DEPTH))
        q = schemas.TriggerQuery.model_validate(query or {})
        h = schemas.TriggerHeaders.model_validate(headers or {})
    except ValidationError as exc:
        raise schemas.invalid_request(exc) from None
    return body.input_object, q.on_conflict, h.idempotency_key


def test_an_empty_body_is_an_empty_input_rejecting_conflicts():
    assert trigger() == ({}, ConflictPolicy.REJECT, None)
    assert trigger(b'{"input": null}') == ({}, ConflictPolicy.REJECT, None)


def test_input_policy_and_key_are_read():
    assert trigger(b'{"input": {"a": [1]}}', {"on_conflict": "replace"},
                   {"Idempotency-Key": "k1"}) == ({"a": [1]}, ConflictPolicy.REPLACE, "k1")


@pytest.mark.parametrize("data, query, headers, field", [
    (b"{", {}, {}, None),
    (b"[1]", {}, {}, None),
    (b'{"input": [1]}', {}, {}, "input"),
    (b'{"other": 1}', {}, {}, None),
    (b'{"input": {"x": NaN}}', {}, {}, None),
    (b'{"input": {"x": Infinity}}', {}, {}, None),
    (b"[" * 60000, {}, {}, None),
    (b"{}", {"on_conflict": "later"}, {}, "on_conflict"),
    (b"{}", {}, {"Idempotency-Key": "x" * 256}, "Idempotency-Key"),
    (b"{}", {}, {"Idempotency-Key": "tab\there"}, "Idempotency-Key"),
    (b"{}", {}, {"Idempotency-Key": ""}, "Idempotency-Key"),
])
def test_bad_requests_name_what_is_wrong(data, query, headers, field):
    with pytest.raises(InvalidRequest) as info:
        trigger(data, query, headers)
    assert info.value.code == "invalid_request"
    assert info.value.data.get("field") == field


def nested(depth: int, inner: str = "{}") -> bytes:
    """An input object nested `depth` levels deep (the innermost holds `inner`), as a body."""
    text = inner if depth == 1 else '{"a": ' * (depth - 1) + inner + "}" * (depth - 1)
    return b'{"input": ' + text.encode() + b"}"


@pytest.mark.parametrize("data, why", [
    (nested(DEPTH + 1), f"nested deeper than {DEPTH} levels"),
    (b'{"input": {"a": ' + b"[" * 254 + b"]" * 254 + b"}}", "nested deeper"),
    (b'{"input": {"a": ' + b"[" * 975 + b"]" * 975 + b"}}", "nested deeper"),
    (b"[" * 60000, "nested deeper"),
    (b'{"input": {"x": 1e999}}', "1e999 is out of range"),
    (b'{"input": {"x": -1E400}}', "out of range"),
    (b'{"input": {"x": [1.5, NaN]}}', "NaN is not valid JSON"),
    (b'{"input": {"x": -Infinity}}', "Infinity is not valid JSON"),
    (b'{"input": {"x": "\\ud800"}}', "lone UTF-16 surrogate"),
    (b'{"input": {"\\udfff": 1}}', "lone UTF-16 surrogate"),
    ('{"input": {"x": "é"}}'.encode("latin-1"), "not UTF-8"),
])
def test_inputs_a_run_could_not_keep_are_refused_at_the_door(data, why):
    """Deeper than TEST_RUN_MAX_INPUT_DEPTH (a run nested 255 deep could never be read back),
    numbers that are not finite (echoed back as `Infinity`, not JSON), strings that cannot be
    stored as UTF-8 (a 500 when the input was written)."""
    with pytest.raises(InvalidRequest) as info:
        trigger(data)
    assert why in info.value.message and info.value.code == "invalid_request"


def test_the_deepest_finite_input_is_accepted():
    assert trigger(nested(DEPTH - 1, '{"x": [1e308, -0.5, "\\ud83d\\ude00"]}'))[0]
    assert trigger(nested(DEPTH))[0]


def test_unknown_fields_are_listed():
    with pytest.raises(InvalidRequest) as info:
        trigger(b'{"input": {}, "b": 1, "a": 2}')
    assert info.value.data == {"fields": ["a", "b"]}


@pytest.mark.parametrize("raw, limit", [({}, 20), ({"limit": "1"}, 1), ({"limit": "100"}, 100)])
def test_list_limit(raw, limit):
    assert schemas.ListQuery.model_validate(raw).limit == limit


@pytest.mark.parametrize("raw", ["0", "101", "-1", "ten", ""])
def test_bad_list_limits(raw):
    with pytest.raises(ValidationError):
        schemas.ListQuery.model_validate({"limit": raw})


@pytest.mark.parametrize("raw", ["-x", "a b", "a" * 129, "a/b"])
def test_bad_workflow_ids(raw):
    with pytest.raises(ValidationError) as info:
        schemas.WorkflowPath.model_validate({"workflow_id": raw})
    assert schemas.invalid_request(info.value).data == {"field": "workflow_id"}


def test_every_error_class_has_exactly_one_body_model_and_each_model_one_class():
    models = schemas.ErrorBody.__subclasses__()
    classes = [m.error_class for m in models]
    assert sorted(classes, key=str) == sorted(every_error(), key=str)
    assert len(set(classes)) == len(models) == len(schemas.ERROR_MODELS)


def test_a_body_models_code_is_its_error_classes():
    for model in schemas.ErrorBody.__subclasses__():
        schema = model.model_json_schema()
        assert schema["properties"]["error"]["const"] == model.error_class.code, model
        with pytest.raises(ValidationError):
            model.model_validate({"error": "other", "message": "m"})


def test_a_body_model_must_name_its_error_class():
    before = len(schemas.ErrorBody.__subclasses__())
    with pytest.raises(TypeError, match="error_class"):
        type("LooseBody", (schemas.ErrorBody,), {})
    gc.collect()  # the half-made class sits in a reference cycle until then
    assert len(schemas.ErrorBody.__subclasses__()) == before


def test_every_error_renders_a_body_its_model_accepts():
    app = Flask(__name__)
    app.add_url_rule("/api/test-runs/<path:run_id>", "api.get_run", lambda run_id: "")
    assert {type(e) for e in SAMPLES} == every_error()
    with app.test_request_context():
        for exc in SAMPLES:
            body = render(exc).get_json()
            schemas.ERROR_MODELS[exc.code].model_validate(body)
            assert set(body) <= set(schemas.ERROR_MODELS[exc.code].model_fields), exc


def test_a_run_answers_in_its_model_and_keeps_fields_it_does_not_name():
    run = Run(run_id="e-" + "0" * 32, workflow_id="e", status=RunStatus.QUEUED,
              input={"a": 1}, triggered_by="ci")
    out = schemas.RunOut.of(run)
    assert out == run.to_dict()
    assert set(schemas.RunOut.model_fields) == set(run.to_dict())
    assert schemas.RunOut.model_validate(out | {"workers_online": 2}).model_dump()[
        "workers_online"] == 2
