"""Key names and run ids: every key of a workflow shares its hash tag, and a run id names its
workflow (which is how a run is found without a cross-slot index)."""

from __future__ import annotations

import pytest

from worker.core.keys import Keys, new_run_id, valid_workflow_id, workflow_of


def test_every_key_of_a_workflow_carries_its_hash_tag():
    keys = Keys("p")
    run_id = new_run_id("echo")
    for key in (keys.slot("echo"), keys.run("echo", run_id), keys.logs("echo", run_id),
                keys.index("echo"), keys.idempotency("echo", "k")):
        assert key.startswith("p:{echo}:"), key
    assert keys.run("echo", run_id) == keys.run_prefix("echo") + run_id


@pytest.mark.parametrize("workflow_id", ["echo", "a", "A.b_c:d-e", "x" * 128])
def test_run_ids_name_their_workflow(workflow_id):
    run_id = new_run_id(workflow_id)
    assert workflow_of(run_id) == workflow_id
    assert run_id != new_run_id(workflow_id)


@pytest.mark.parametrize("text", ["", "echo", "echo-123", "-" + "0" * 32, "echo-" + "G" * 32,
                                  "../x-" + "0" * 32, "echo-" + "0" * 33,
                                  "echo-" + "0" * 32 + "\n"])
def test_anything_else_is_not_a_run_id(text):
    assert workflow_of(text) is None


@pytest.mark.parametrize("workflow_id, valid", [
    ("echo", True), ("x" * 128, True), ("x" * 129, False), ("-lead", False),
    ("sp ace", False), ("a/b", False), ("", False), ("a{b}", False), ("echo\n", False),
])
def test_workflow_ids(workflow_id, valid):
    assert valid_workflow_id(workflow_id) is valid


def test_scan_patterns_skip_lookalike_idempotency_keys():
    """`p:{*}:slot` also matches an idempotency key ending in `}:slot`: it is not a slot."""
    keys = Keys("p")
    assert keys.workflow_in(keys.slot("echo"), "slot") == "echo"
    assert keys.workflow_in(keys.idempotency("echo", "x}:slot"), "slot") is None
    assert keys.workflow_in(keys.index("echo"), "runs") == "echo"
