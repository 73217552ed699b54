"""Response models: routes never build JSON ad hoc, and the OpenAPI document's answers are
generated from these classes. Response models allow fields they do not name
(`extra="allow"`), so an answer can grow a field (e.g. `workers_online`) without breaking the
contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from worker.client.service import WorkflowState
from worker.core.runs import RUN_FIELDS, SUMMARY_FIELDS, Run, RunField


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


Timestamp = Annotated[str | None, Field(description="ISO-8601 UTC, or null",
                                        json_schema_extra={"format": "date-time"})]


class _RunModel(_Out):
    """A run's answer model: its fields come from worker/core/runs.py RUN_FIELDS (below)."""

    @classmethod
    def of(cls, run: Run) -> dict[str, Any]:
        data = run.to_dict()
        return cls.model_validate({k: data[k] for k in cls.model_fields}).model_dump(
            mode="json")


def _run_model(name: str, doc: str, fields: Iterable[RunField]) -> type[_RunModel]:
    """A response model of these run fields, each typed as RUN_FIELDS declares it."""
    spec: dict[str, Any] = {
        f.name: (Timestamp if f.timestamp else f.type,
                 Field(description=f.description) if f.description else ...)
        for f in fields}
    return create_model(name, __base__=_RunModel, __doc__=doc, **spec)


#: the active run's fields that GET /api/workflows/<id> shows, in this order
ACTIVE_RUN_FIELDS = ("run_id", "status", "created_at", "started_at", "last_heartbeat_at",
                     "worker")

if TYPE_CHECKING:  # built from RUN_FIELDS at import; to the type checker, run models
    class RunOut(_RunModel): ...
    class RunSummaryOut(_RunModel): ...
    class ActiveRun(_RunModel): ...
else:
    RunOut = _run_model("RunOut", "A test run (worker/core/runs.py `Run.to_dict`).",
                        RUN_FIELDS)
    RunSummaryOut = _run_model(
        "RunSummaryOut", "A test run without its input, result and logs (the runs list's "
        "default).", SUMMARY_FIELDS)
    ActiveRun = _run_model("ActiveRun", "The run holding a workflow's slot.",
                           [next(f for f in RUN_FIELDS if f.name == name)
                            for name in ACTIVE_RUN_FIELDS])


class LogPageOut(_Out):
    """A page of a run's log lines."""

    run_id: str
    offset: int
    total: int = Field(description="lines the log holds (older ones beyond "
                       "TEST_RUN_MAX_LOG_LINES were dropped)")
    lines: list[str]
    next_offset: int | None = Field(description="the next page's offset, or null at the end")


class TriggeredRun(RunOut):
    """The run a trigger admitted (202) or found under its Idempotency-Key (200). With
    `workers_online` 0 it waits in the queue: it starts if a worker comes within the queue
    timeout, else it ends `expired`."""

    model_config = ConfigDict(extra="allow", openapi_extra={"headers": {  # type: ignore[typeddict-unknown-key]
        "Location": {"description": "the run's URL", "required": True,
                     "schema": {"type": "string"}}}})

    workers_online: int | None = Field(
        None, description="workers consuming the test-run queue (advertised in Redis, read "
        "at most a second ago); null when it could not be read")
    joined: bool | None = Field(
        None, description="on_conflict=join: true when this is the run in progress (or the "
        "pending run) with the same input and workflow version (200)")


class CancelledRun(RunOut):
    """The run, now cancelled. A queued run's slot is already free; a running run's passes
    once its worker confirms the body stopped (or its lease lapses); a pending run had none."""


class WorkflowOut(_Out):
    id: str
    description: str
    active_run_id: str | None = Field(description="the run holding the workflow's slot")
    active_run: ActiveRun | None = Field(None, description="only when one workflow is read")
    pending_run_id: str | None = Field(
        None, description="the run waiting to take the slot next (on_conflict=queue)")
    pending_run: ActiveRun | None = Field(None, description="only when one workflow is read")
    version: str | None = Field(
        None, description="the workflow's version: `version=` on @workflow, else a hash of "
        "its source (what on_conflict=join compares); only when one workflow is read")
    input_schema: dict[str, Any] | None = Field(
        None, description="the JSON Schema a trigger's input must fit (null: any JSON object); "
        "only when one workflow is read")

    @classmethod
    def of(cls, state: WorkflowState, *, detail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"id": state.workflow.id,
                               "description": state.workflow.description,
                               "active_run_id": state.active_run_id,
                               "pending_run_id": state.pending_run_id}
        if state.active_run is not None:
            out["active_run"] = ActiveRun.of(state.active_run)
        if state.pending_run is not None:
            out["pending_run"] = ActiveRun.of(state.pending_run)
        if detail:
            out["version"] = state.workflow.version
            schema = state.workflow.input_schema
            out["input_schema"] = schema.json_schema if schema is not None else None
        return cls.model_validate(out).model_dump(mode="json", exclude_unset=True)


class WorkflowList(_Out):
    workflows: list[WorkflowOut]
    workers_online: int | None = Field(
        None, description="workers consuming the test-run queue (advertised in Redis, read "
        "at most a second ago); null when it could not be read")


class RunList(_Out):
    runs: list[RunSummaryOut] = Field(description="summaries; whole runs with ?fields=full")


class Health(_Out):
    status: Literal["ok"]


class Readiness(_Out):
    status: Literal["ready"]
    checks: dict[str, str]
    workers_online: int | None = Field(
        None, description="workers consuming the test-run queue (advertised in Redis, read "
        "at most a second ago); null when it could not be read")
