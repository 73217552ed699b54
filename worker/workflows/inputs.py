"""A workflow's input schema: what `@workflow(..., input_schema=…)` declares, checked by the
caller's side before a slot is taken (a wrong input must not hold a workflow until a worker
finds out), and published as JSON Schema (GET /api/workflows/<id>, /openapi.json, the page's
form).

Two kinds are accepted. A pydantic model is validated by pydantic itself in strict mode, so
what passes is what its published JSON Schema allows (lax mode would take `"5"` for a number
the schema says must be one) and its own validators still run. A JSON Schema dict is compiled
once per workflow by `jsonschema-rs` (Rust, draft 2020-12 by default) and used as is. Either
way each problem is reported with a JSON Pointer (RFC 6901) into the input: `/seconds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from pydantic import BaseModel, ValidationError

#: at most this many problems are reported for one input (a huge wrong input is not echoed)
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class InputProblem:
    """One way an input does not fit its schema: where (a JSON Pointer) and what."""

    pointer: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


def pointer(path: Any) -> str:
    """A JSON Pointer from a path of keys and indexes (`("a", 0)` → `/a/0`; `()` → ``)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


@dataclass(frozen=True)
class InputSchema:
    """A workflow's declared input: its JSON Schema, and the check built once from it."""

    json_schema: dict[str, Any]
    model: type[BaseModel] | None = None
    _validator: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, declared: type[BaseModel] | Mapping[str, Any]) -> InputSchema:
        """Build it from what `@workflow` was given; a schema that does not compile fails
        here, at import, not at the first trigger."""
        if isinstance(declared, type) and issubclass(declared, BaseModel):
            return cls(declared.model_json_schema(), model=declared)
        if isinstance(declared, Mapping):
            schema = dict(declared)
            try:
                validator = jsonschema_rs.validator_for(schema)
            except (ValueError, jsonschema_rs.ValidationError) as exc:
                raise TypeError(f"input_schema is not a valid JSON Schema: {exc}") from None
            return cls(schema, _validator=validator)
        raise TypeError("input_schema must be a pydantic model class or a JSON Schema dict")

    def problems(self, input: Any) -> list[InputProblem]:
        """Every way `input` does not fit (empty: it fits), in the order found."""
        if self.model is not None:
            try:
                self.model.model_validate(input, strict=True)
            except ValidationError as exc:
                return [InputProblem(pointer(e["loc"]), e["msg"])
                        for e in exc.errors(include_url=False)[:MAX_PROBLEMS]]
            return []
        found = []
        for error in self._validator.iter_errors(input):
            found.append(InputProblem(pointer(error.instance_path), error.message))
            if len(found) >= MAX_PROBLEMS:
                break
        return found
