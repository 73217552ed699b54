"""What must be true after every step of the slot machine, read from the real Redis (through
the driver) and held against the plain model (tests/support/slot_model.py).

Each check raises AssertionError with a sentence saying which promise broke; hypothesis then
shrinks the steps that led there to a minimal counterexample.
"""

from __future__ import annotations

from worker.core.status import TERMINAL, ErrorType, ReleaseReason, RunStatus

from .model_driver import Driver
from .slot_model import AGREES, LIVE, SlotModel


def _status(raw: dict[str, str]) -> RunStatus | None:
    return RunStatus(raw["status"]) if raw.get("status") else None


def slots_match(model: SlotModel, driver: Driver) -> None:
    """Each workflow's slot is held by exactly the run the model says (or by none), its
    pending pointer names the run the model says, and exactly the runs the model says were
    enqueued have a message on the queue."""
    for workflow_id, expected in model.slot.items():
        assert driver.slot(workflow_id) == expected, (
            f"slot of {workflow_id}: Redis says {driver.slot(workflow_id)!r}, the model "
            f"{expected!r}")
        assert driver.pending(workflow_id) == model.pending.get(workflow_id), (
            f"pending of {workflow_id}: Redis says {driver.pending(workflow_id)!r}, the model "
            f"{model.pending.get(workflow_id)!r}")
    assert driver.enqueued() == model.enqueued, (
        f"enqueued: Redis {sorted(driver.enqueued())}, model {sorted(model.enqueued)}")


def _pending_runs(model: SlotModel, driver: Driver, workflow_id: str) -> list[str]:
    return [r.run_id for r in model.runs.values() if r.workflow_id == workflow_id
            and _status(driver.record(workflow_id, r.run_id)) is RunStatus.PENDING]


def one_pending(model: SlotModel, driver: Driver) -> None:
    """At most one pending run per workflow."""
    for workflow_id in model.slot:
        pending = _pending_runs(model, driver, workflow_id)
        assert len(pending) <= 1, f"{workflow_id} has {len(pending)} pending runs: {pending}"


def no_free_slot_with_a_pending_run(model: SlotModel, driver: Driver) -> None:
    """A free slot never coexists with a pending run (it is promoted in the step that frees
    the slot; a lapsed lease, by the next upkeep)."""
    for workflow_id in model.slot:
        if driver.slot(workflow_id) is None:
            pending = _pending_runs(model, driver, workflow_id)
            assert not pending, f"{workflow_id}'s slot is free while {pending} waits"


def ended_pending_never_enqueued(model: SlotModel, driver: Driver) -> None:
    """A run that ended while pending (superseded, cancelled, expired) is never enqueued (unless
    Redis lost its record: a repeat of its admission then made it anew, pending, while its
    earlier life's message is still queued — refused at its start)."""
    for run_id in driver.enqueued():
        run = model.runs.get(run_id)
        assert run is not None, f"a message for an unknown run {run_id}"
        if run.ever_lost:
            continue
        raw = driver.record(run.workflow_id, run_id)
        assert not run.ended_pending, f"{run_id} ended while pending, yet it was enqueued"
        assert _status(raw) is not RunStatus.SUPERSEDED, f"{run_id} superseded and enqueued"


def never_two_bodies(model: SlotModel, driver: Driver) -> None:
    """Never two bodies of one workflow at once — cancels and replaces included: a cancelled
    body's slot passes only once it has stopped (unless Redis lost what it knew of them)."""
    for workflow_id in model.slot:
        if workflow_id in model.forgetful:
            continue
        running = {run for run, _ in model.bodies if model.runs[run].workflow_id == workflow_id}
        assert len(running) <= 1, f"{workflow_id}: bodies of {sorted(running)} at once"


def records_match(model: SlotModel, driver: Driver) -> None:
    """Each run's record says what the model says: status, why, who runs it."""
    for run in model.runs.values():
        raw = driver.record(run.workflow_id, run.run_id)
        if not run.present:
            assert not raw, f"{run.run_id}: the model lost this record, Redis has {raw}"
            continue
        got = (_status(raw), raw.get("error_type") or None, raw.get("release_reason") or None,
               raw.get("worker") or None, raw.get("pid") or None, raw.get("record_lost") == "1")
        owner = run.owner
        want = (run.status, run.error_type.value if run.error_type else None,
                run.release_reason.value if run.release_reason else None,
                owner[0] if owner else run.worker, str(owner[1]) if owner else None,
                run.record_lost)
        assert got == want, (f"{run.run_id} (status, error_type, release_reason, worker, pid, "
                             f"record_lost): Redis {got}, model {want}")


def holder_is_live(model: SlotModel, driver: Driver) -> None:
    """A slot is held only by a run of its workflow that is queued or running, or was
    cancelled or replaced while running and its body is stopping (or whose record Redis lost:
    nothing can be said of it then)."""
    for workflow_id in model.slot:
        holder = driver.slot(workflow_id)
        if holder is None:
            continue
        assert holder.startswith(workflow_id + "-"), f"{workflow_id}'s slot held by {holder}"
        raw = driver.record(workflow_id, holder)
        if raw and not raw.get("stopping"):  # cancelled while running: its body is stopping
            assert _status(raw) in LIVE, (
                f"{workflow_id}'s slot is held by {holder}, which is {raw.get('status')}")


def one_live_holder(model: SlotModel, driver: Driver) -> None:
    """At most one run per workflow is live while holding the slot, and never two running
    with a live lease (a lease is the slot: so of all running runs, one at most holds it)."""
    for workflow_id in model.slot:
        holder = driver.slot(workflow_id)
        holding = [r for r in model.runs.values() if r.workflow_id == workflow_id
                   and r.run_id == holder
                   and _status(driver.record(workflow_id, r.run_id)) in LIVE]
        assert len(holding) <= 1, f"{workflow_id}: {len(holding)} live runs hold the slot"


def terminal_never_changes(seen: dict[str, RunStatus], model: SlotModel,
                           driver: Driver) -> None:
    """Once terminal, a status stays (as long as Redis keeps the record: `seen` forgets a run
    whose record the test deleted)."""
    for run in model.runs.values():
        status = _status(driver.record(run.workflow_id, run.run_id))
        before = seen.get(run.run_id)
        if before is not None:
            assert status in (before, None), (
                f"{run.run_id} was {before.value}, now {status}: a terminal status changed")
        if status in TERMINAL:
            seen[run.run_id] = status


def reasons_agree(model: SlotModel, driver: Driver) -> None:
    """A run's error_type and release_reason agree with its status."""
    for run in model.runs.values():
        raw = driver.record(run.workflow_id, run.run_id)
        status = _status(raw)
        if status is None:
            continue
        error_type = ErrorType(raw["error_type"]) if raw.get("error_type") else None
        reason = ReleaseReason(raw["release_reason"]) if raw.get("release_reason") else None
        types, reasons = AGREES[status]
        assert error_type in types, f"{run.run_id} is {status.value} with error_type {error_type}"
        assert reason in reasons, f"{run.run_id} is {status.value} with release_reason {reason}"


def dispossessed_never_run(model: SlotModel, driver: Driver) -> None:
    """A run that never started never becomes running after its slot was taken from it or
    after it waited past the queue timeout (unless Redis lost its record, which then says
    `record_lost`)."""
    for run in model.runs.values():
        if run.ever_started or not (run.dispossessed or run.overdue):
            continue
        raw = driver.record(run.workflow_id, run.run_id)
        if raw.get("record_lost") == "1":
            continue
        assert _status(raw) is not RunStatus.RUNNING, (
            f"{run.run_id} never started and "
            f"{'lost its slot' if run.dispossessed else 'waited past the queue timeout'}, "
            "yet it is running")
        assert all(r != run.run_id for r, _ in model.bodies), f"{run.run_id} executes"


def bodies_accounted(model: SlotModel, driver: Driver) -> None:
    """A body executing a live run is the process its record names — else nobody would renew
    its lease nor stop it — unless Redis lost the record (`record_lost`: then the next beat
    of either claimant ends the run)."""
    for run_id, (worker, pid) in model.bodies:
        run = model.runs[run_id]
        raw = driver.record(run.workflow_id, run_id)
        if _status(raw) is not RunStatus.RUNNING or raw.get("record_lost") == "1":
            continue
        assert (raw.get("worker"), raw.get("pid")) == (worker, str(pid)), (
            f"{run_id} executes in {worker}/{pid} but its record names "
            f"{raw.get('worker')}/{raw.get('pid')}")


def every_key_expires(driver: Driver) -> None:
    """No key of ours lives forever: each has a TTL."""
    forever = driver.keys_without_ttl()
    assert not forever, f"keys without a TTL: {forever}"


def events_match(model: SlotModel, driver: Driver) -> None:
    """Each status change wrote exactly one status event (a repeat writes none)."""
    for run in model.runs.values():
        got = driver.status_events(run.workflow_id, run.run_id)
        assert got == run.status_events, (
            f"{run.run_id}: {got} status events on its stream, the model counts "
            f"{run.status_events}")
