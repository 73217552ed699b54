"""The code's shape, checked: no import cycles in worker/, and the web reaches the run store
and Celery only through the service."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, package: str) -> set[str]:
    """Every module of `package` that `path` imports, at any depth (functions, TYPE_CHECKING)."""
    name = module_name(path)
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}
    modules = {module_name(p) for p in (ROOT / package).rglob("*.py")}
    # a module's own packages are imported before it anyway: not an edge that can cycle
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    return {m for m in found if m in modules and m != name and m not in ancestors}


def test_worker_has_no_import_cycles():
    graph = {module_name(p): imports_of(p, "worker") for p in (ROOT / "worker").rglob("*.py")}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif len(path) < 20:
                visit(nxt, path + [nxt])

    for start in sorted(graph):
        visit(start, [start])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles[:10])


def test_the_web_goes_through_the_service():
    """Routes and health checks call service methods: never the store or Celery directly."""
    reached = []
    for path in (ROOT / "web").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("store", "celery", "redis"):
                reached.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("worker.core.store", "worker.core.lua", "worker.runner.tasks",
                     "worker.runner.signals")):
                reached.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}")
    assert not reached, reached
