"""A run record as Redis holds it (a hash of strings) → the public shape of a run."""

from __future__ import annotations

from worker.core.runs import Run, iso
from worker.core.status import ErrorType, ReleaseReason, RunStatus


def test_a_full_record_decodes_to_the_public_shape():
    raw = {"run_id": "echo-" + "a" * 32, "workflow_id": "echo", "type": "test",
           "status": RunStatus.FAILED.value, "created_ms": "1700000000000",
           "started_ms": "1700000000500", "finished_ms": "1700000001000",
           "input": '{"a":1}', "result": "", "error": "RuntimeError: x",
           "error_type": ErrorType.ERROR.value, "worker": "w@h",
           "release_reason": ReleaseReason.FAILED.value, "released_ms": "1700000001000",
           "heartbeat_ms": "1700000000500", "pid": "123"}
    run = Run.from_redis(raw, ["line 1"])
    assert run.status is RunStatus.FAILED and run.terminal
    data = run.to_dict()
    assert data["created_at"] == "2023-11-14T22:13:20.000Z"
    assert data["finished_at"] == iso(1700000001000)
    assert data["input"] == {"a": 1} and data["result"] is None
    assert data["error_type"] == ErrorType.ERROR and data["release_reason"] == ReleaseReason.FAILED
    assert data["logs"] == ["line 1"] and data["record_lost"] is False
    assert "pid" not in data  # internal: which pool process to renew for and to kill


def test_a_queued_record_has_nulls_not_empty_strings():
    run = Run.from_redis({"run_id": "e-" + "0" * 32, "workflow_id": "e",
                          "status": RunStatus.QUEUED.value, "created_ms": "1", "input": "{}"})
    data = run.to_dict()
    assert not run.terminal
    for field in ("started_at", "finished_at", "result", "error", "error_type", "worker",
                  "release_reason", "released_at", "last_heartbeat_at"):
        assert data[field] is None, field
    assert data["type"] == "test" and data["logs"] == []


def test_a_record_rebuilt_after_redis_lost_it_says_so():
    run = Run.from_redis({"run_id": "e-" + "0" * 32, "workflow_id": "e", "record_lost": "1",
                          "status": RunStatus.SUCCEEDED.value, "input": "{}"})
    assert run.to_dict()["record_lost"] is True and run.created_ms is None
