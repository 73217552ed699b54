"""The workflow registry: plain functions `fn(ctx, input) -> JSON value`, registered by id,
each with an optional input schema (a pydantic model or a JSON Schema dict: inputs.py).

Modules named in WORKFLOW_MODULES are imported by both processes: the web to know what exists
and to check a trigger's input before a slot is taken, the worker to run it.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ..core.keys import valid_workflow_id
from .inputs import InputProblem, InputSchema


@dataclass(frozen=True)
class RunContext:
    """What a workflow body is given besides its input; `logger` lines land in the run's logs."""

    run_id: str
    workflow_id: str
    logger: logging.LoggerAdapter
    #: the task's soft time limit in seconds (None: unknown), counted from `began`
    soft_time_limit: float | None = None
    #: time.monotonic() when the task began in its pool process (before the start check)
    began: float = field(default_factory=time.monotonic)

    def soft_time_left(self) -> float | None:
        """Seconds until SoftTimeLimitExceeded is raised in the body: the limit counts from
        the task's start, so the start check and anything before the body used some (under
        load, enough to push a sleep clamped to the limit alone past it)."""
        if self.soft_time_limit is None:
            return None
        return self.soft_time_limit - (time.monotonic() - self.began)


WorkflowFn = Callable[[RunContext, dict[str, Any]], Any]


@dataclass(frozen=True)
class Workflow:
    id: str
    description: str
    fn: WorkflowFn
    #: None: any JSON object is accepted (as before schemas existed)
    input_schema: InputSchema | None = None
    #: "the same workflow code" for on_conflict=join, recorded on each run: `version=` given to
    #: @workflow, else a hash of the function's source (its code object's, without source)
    version: str = ""

    def input_problems(self, input: Any) -> list[InputProblem]:
        """How `input` does not fit this workflow's schema (empty: it fits, or no schema)."""
        return self.input_schema.problems(input) if self.input_schema is not None else []


class WorkflowError(Exception):
    pass


_registry: dict[str, Workflow] = {}


def source_version(fn: WorkflowFn) -> str:
    """A version for a workflow that names none: its function's source, hashed (a function
    without retrievable source: its bytecode and constants)."""
    try:
        text = inspect.getsource(fn).encode()
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        text = (code.co_code + repr(code.co_consts).encode()) if code else repr(fn).encode()
    return "src-" + hashlib.sha256(text).hexdigest()[:16]


def workflow(workflow_id: str, *, description: str = "",
             input_schema: type[BaseModel] | dict[str, Any] | None = None,
             version: str | None = None) -> Callable[[WorkflowFn], WorkflowFn]:
    """Register `fn` under `workflow_id`; re-registering the same function is harmless.
    `input_schema`: a pydantic model or a JSON Schema dict the input must fit (checked by the
    web before a slot is taken); without one, any JSON object is accepted. `version`: what
    on_conflict=join compares beside the input (default: a hash of the function's source)."""
    if not valid_workflow_id(workflow_id):
        raise WorkflowError(f"invalid workflow id {workflow_id!r}")
    try:
        schema = InputSchema.of(input_schema) if input_schema is not None else None
    except TypeError as exc:
        raise WorkflowError(f"workflow {workflow_id!r}: {exc}") from None

    def register(fn: WorkflowFn) -> WorkflowFn:
        existing = _registry.get(workflow_id)
        if existing and existing.fn.__qualname__ != fn.__qualname__:
            raise WorkflowError(f"workflow id {workflow_id!r} is registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        _registry[workflow_id] = Workflow(workflow_id, description or (doc[0] if doc else ""),
                                          fn, schema, version or source_version(fn))
        return fn

    return register


def load(modules: Iterable[str]) -> None:
    for name in modules:
        importlib.import_module(name)


def get(workflow_id: str) -> Workflow | None:
    return _registry.get(workflow_id)


def all_workflows() -> list[Workflow]:
    return sorted(_registry.values(), key=lambda w: w.id)
