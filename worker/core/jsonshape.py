"""The shape of the JSON a run keeps — its input and its result: nested at most
TEST_RUN_MAX_INPUT_DEPTH deep, every number finite.

A run is read back through its response model for up to TEST_RUN_RETENTION, and pydantic's
serializer gives up at 255 levels, so a deeper input or result made the run unreadable (its
read, its list, its event stream and its cancel all answered 500); NaN and ±Infinity are not
JSON at all, and were echoed back as such. The web refuses such an input at the door (400,
web/schemas/requests.py); a worker refuses such a result (`invalid_result`,
worker/runner/tasks.py). Both walk the value without recursion, so a hostile depth costs no
stack.
"""

from __future__ import annotations

import math
from typing import Any

_CONTAINERS = (dict, list, tuple)


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether `value` nests containers more than `limit` deep (`{}` and `[]` are 1 deep, a
    scalar 0). Stops at the first container past the limit, so a cycle ends there too."""
    if not isinstance(value, _CONTAINERS):
        return limit < 0
    if limit < 1:
        return True
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, _CONTAINERS):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


class NotFinite(ValueError):
    """A number that is not finite as a float: `1e999`, which Python reads as Infinity."""


def finite_float(text: str) -> float:
    """`json.loads`' `parse_float`: the number, or NotFinite when it overflows a float."""
    number = float(text)
    if not math.isfinite(number):
        raise NotFinite(f"the number {text[:32]} is out of range (numbers must be finite)")
    return number
