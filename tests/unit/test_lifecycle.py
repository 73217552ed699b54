"""Lifecycle hooks: every subscriber hears every event, and one that raises never breaks the
lifecycle (nor keeps the others from hearing it)."""

from __future__ import annotations

import logging
from pathlib import Path

from worker.core.lifecycle import EVENTS, Lifecycle, LifecycleHooks, LogHooks
from worker.core.status import ErrorType, ReleaseReason, RunStatus

ROOT = Path(__file__).resolve().parents[2]


class Broken(LifecycleHooks):
    def admitted(self, run_id: str, workflow_id: str) -> None:
        raise RuntimeError("subscriber bug")


class Recorder(LifecycleHooks):
    def __init__(self) -> None:
        self.heard: list[tuple] = []

    def admitted(self, run_id: str, workflow_id: str) -> None:
        self.heard.append((self.admitted.__name__, run_id, workflow_id))

    def forced(self, run_id: str, workflow_id: str, reason: ReleaseReason) -> None:
        self.heard.append((self.forced.__name__, run_id, workflow_id, reason))


def test_a_subscriber_that_raises_does_not_break_the_others(caplog):
    recorder = Recorder()
    hooks = Lifecycle(Broken(), recorder)
    with caplog.at_level(logging.ERROR, logger="worker.lifecycle"):
        hooks.admitted("r1", "w")
    hooks.forced("r2", "w", ReleaseReason.FORCED)
    hooks.cancelled("r3", "w")  # nobody overrides it: a no-op, not an error
    assert recorder.heard == [(Recorder.admitted.__name__, "r1", "w"),
                              (Recorder.forced.__name__, "r2", "w", ReleaseReason.FORCED)]
    assert "failed on admitted" in caplog.text


def test_the_log_subscriber_writes_one_line_per_event_with_its_fields(caplog):
    with caplog.at_level(logging.INFO, logger="worker.lifecycle"):
        LogHooks().took_over("old", "w", "new", ReleaseReason.REPLACED)
    record = caplog.records[-1]
    assert record.getMessage() == (
        "test run took_over run_id=old workflow_id=w by_run_id=new reason=replaced")
    assert record.event == "took_over" and record.run_id == "old"


def test_every_event_is_raised_somewhere_fanned_out_and_logged():
    source = "".join(p.read_text() for p in ROOT.glob("worker/**/*.py"))
    for name in EVENTS:
        assert f"lifecycle.{name}(" in source, f"no code raises {name}"
        assert getattr(Lifecycle, name) is not getattr(LifecycleHooks, name)
        assert getattr(LogHooks, name) is not getattr(LifecycleHooks, name)


class Counts(LifecycleHooks):
    """Counts finished and released apart, as the metrics do (no `ended` of its own)."""

    def __init__(self) -> None:
        self.heard: list[tuple] = []

    def finished(self, run_id: str, workflow_id: str, status: RunStatus,
                 error_type: ErrorType | None, *, duration_s: float | None = None) -> None:
        self.heard.append((self.finished.__name__, run_id, status, duration_s))

    def released(self, run_id: str, workflow_id: str, reason: ReleaseReason) -> None:
        self.heard.append((self.released.__name__, run_id, reason))


def test_an_ending_with_its_release_is_both_events_to_a_subscriber_and_one_log_line(caplog):
    counts = Counts()
    with caplog.at_level(logging.INFO, logger="worker.lifecycle"):
        Lifecycle(LogHooks(), counts).ended("r1", "w", RunStatus.SUCCEEDED, None,
                                            ReleaseReason.SUCCEEDED, duration_s=0.5)
    assert counts.heard == [(Counts.finished.__name__, "r1", RunStatus.SUCCEEDED, 0.5),
                            (Counts.released.__name__, "r1", ReleaseReason.SUCCEEDED)]
    assert [r.getMessage() for r in caplog.records] == [
        "test run finished run_id=r1 workflow_id=w status=succeeded duration_s=0.5 "
        "release_reason=succeeded"]
    assert caplog.records[0].event == LifecycleHooks.finished.__name__
