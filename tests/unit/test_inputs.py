"""A workflow's input schema (worker/workflows/inputs.py), without Redis: a pydantic model is
checked strictly (what its published JSON Schema allows), a JSON Schema dict by jsonschema-rs,
and every problem points into the input with a JSON Pointer."""

from __future__ import annotations

import pytest

from worker.workflows import WorkflowError, get, workflow
from worker.workflows.examples import SleepInput
from worker.workflows.inputs import InputSchema, pointer


def test_pointers_escape_tilde_and_slash():
    assert pointer(()) == ""
    assert pointer(("seconds",)) == "/seconds"
    assert pointer(("a/b", 0, "c~d")) == "/a~1b/0/c~0d"


def test_a_model_is_checked_strictly_against_its_own_schema():
    schema = InputSchema.of(SleepInput)
    assert schema.json_schema["properties"]["seconds"]["type"] == "number"
    assert schema.problems({"seconds": 1}) == [] and schema.problems({}) == []
    for wrong in ({"seconds": "soon"}, {"seconds": "5"}, {"seconds": True}):
        (problem,) = schema.problems(wrong)
        assert problem.pointer == "/seconds", wrong
    assert [p.pointer for p in schema.problems({"seconds": -1, "later": 1})] == [
        "/seconds", "/later"]


def test_a_json_schema_dict_is_compiled_once_and_points_at_each_problem():
    schema = InputSchema.of({"type": "object", "required": ["count"],
                             "properties": {"count": {"type": "integer", "minimum": 1},
                                            "tags": {"type": "array",
                                                     "items": {"type": "string"}}}})
    assert schema.problems({"count": 2, "tags": ["a"]}) == []
    found = {(p.pointer, "required" in p.message) for p in schema.problems({"tags": ["a", 3]})}
    assert found == {("", True), ("/tags/1", False)}


def test_a_schema_that_is_not_one_fails_at_registration():
    with pytest.raises(WorkflowError, match="not a valid JSON Schema"):
        workflow("bad-schema-wf", input_schema={"type": "nope"})
    with pytest.raises(WorkflowError, match="pydantic model class or a JSON Schema"):
        workflow("bad-schema-wf", input_schema=42)  # type: ignore[arg-type]


def test_the_bundled_examples_declare_their_inputs():
    import worker.workflows.examples  # noqa: F401 - registers them

    for workflow_id in ("sleep", "fail", "echo"):
        found = get(workflow_id)
        assert found is not None and found.input_schema is not None, workflow_id
    hang = get("hang")
    assert hang is not None and hang.input_schema is None
    assert hang.input_problems({"anything": [1, {"x": None}]}) == []


def test_problems_are_capped():
    schema = InputSchema.of({"type": "object", "additionalProperties": {"type": "integer"}})
    assert len(schema.problems({f"k{i}": "x" for i in range(100)})) == 20
