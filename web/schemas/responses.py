"""Response models: routes never build JSON ad hoc, and the OpenAPI document's answers are
generated from these classes. Response models allow fields they do not name
(`extra="allow"`), so an answer can grow a field (e.g. `workers_online`) without breaking the
contract.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from worker.client.service import WorkflowState
from worker.core.runs import Run
from worker.core.status import ErrorType, ReleaseReason, RunStatus


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


Timestamp = Annotated[str | None, Field(description="ISO-8601 UTC, or null",
                                        json_schema_extra={"format": "date-time"})]


class RunOut(_Out):
    """A test run (worker/core/runs.py `Run.to_dict`)."""

    run_id: str
    workflow_id: str
    type: Literal["test"]
    status: RunStatus
    created_at: Timestamp
    started_at: Timestamp
    finished_at: Timestamp
    input: Any
    result: Any
    error: str | None
    error_type: ErrorType | None
    logs: list[str]
    worker: str | None
    release_reason: ReleaseReason | None
    released_at: Timestamp
    last_heartbeat_at: Timestamp
    record_lost: bool
    triggered_by: str | None = Field(description="the name of the API token that triggered it")

    @classmethod
    def of(cls, run: Run) -> dict[str, Any]:
        return cls.model_validate(run.to_dict()).model_dump(mode="json")


#: what a run summary leaves out (GET …/test-runs without ?fields=full)
SUMMARY_OMITS = ("input", "result", "logs")


class RunSummaryOut(_Out):
    """A test run without its input, result and logs (the runs list's default)."""

    run_id: str
    workflow_id: str
    type: Literal["test"]
    status: RunStatus
    created_at: Timestamp
    started_at: Timestamp
    finished_at: Timestamp
    error: str | None
    error_type: ErrorType | None
    worker: str | None
    release_reason: ReleaseReason | None
    released_at: Timestamp
    last_heartbeat_at: Timestamp
    record_lost: bool
    triggered_by: str | None

    @classmethod
    def of(cls, run: Run) -> dict[str, Any]:
        data = {k: v for k, v in run.to_dict().items() if k not in SUMMARY_OMITS}
        return cls.model_validate(data).model_dump(mode="json")


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


class CancelledRun(RunOut):
    """The run, now cancelled; its slot is already free."""


class ActiveRun(_Out):
    run_id: str
    status: RunStatus
    created_at: Timestamp
    started_at: Timestamp
    last_heartbeat_at: Timestamp
    worker: str | None


class WorkflowOut(_Out):
    id: str
    description: str
    active_run_id: str | None = Field(description="the run holding the workflow's slot")
    active_run: ActiveRun | None = Field(None, description="only when one workflow is read")

    @classmethod
    def of(cls, state: WorkflowState) -> dict[str, Any]:
        out: dict[str, Any] = {"id": state.workflow.id,
                               "description": state.workflow.description,
                               "active_run_id": state.active_run_id}
        if state.active_run is not None:
            data = state.active_run.to_dict()
            out["active_run"] = {k: data[k] for k in ActiveRun.model_fields}
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
