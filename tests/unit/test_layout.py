"""The code's shape, checked: worker/ is cut by where each module runs, with no import cycle,
and the web reaches the run store and Celery only through the service.

- `worker/core/`: what every process imports; it imports neither of the two sides.
- `worker/client/`: the caller's side (the web, the CLI); it never imports the worker's side.
- `worker/runner/`: what runs only inside a Celery worker process.
- `web/`: imports only the caller's side and the core; worker/ never imports it (the web's own
  errors, and how any error answers over HTTP, live in web/).

And each module stays a size one reads: at most MAX_LINES lines unless its docstring says why,
and `RunStore` holds a run's lifecycle, not every Redis read and write there is.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("worker", "web")

MAX_LINES = 300
#: the line a longer module's docstring carries in its first paragraph, followed by the reason
OVER_MARKER = re.compile(rf"^\s*Over {MAX_LINES} lines because \S")
#: RunStore's public methods and properties: its connection, ping and eviction check, and the
#: run's lifecycle (admit, upkeep — a pending run's promotion into a lapsed slot —, start,
#: finish, cancel, heartbeat, body_of, append_log, get, snapshot, list_runs, log_page, holders,
#: slots — with the pending run —, force_release)
RUN_STORE_MAX_PUBLIC = 18


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


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p, "worker")
            for package in PRODUCT for p in (ROOT / package).rglob("*.py")}


def test_worker_has_no_import_cycles():
    edges = graph()
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif len(path) < 20:
                visit(nxt, path + [nxt])

    for start in sorted(edges):
        visit(start, [start])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles[:10])


FORBIDDEN = {
    "worker.core": ("worker.client", "worker.runner"),
    "worker.workflows": ("worker.client", "worker.runner"),
    "worker.client": ("worker.runner",),
    "web": ("worker.runner",),
}


def test_each_side_imports_only_what_it_may():
    broken = []
    for module, targets in graph().items():
        for prefix, forbidden in FORBIDDEN.items():
            if module == prefix or module.startswith(prefix + "."):
                broken += [f"{module} imports {t}" for t in sorted(targets)
                           if t.startswith(forbidden)]
    assert not broken, "\n".join(broken)


def test_every_worker_module_sits_in_a_side():
    """Nothing new lands beside the three subpackages but the package's own entry points."""
    loose = sorted(p.name for p in (ROOT / "worker").glob("*.py")
                   if p.name not in ("__init__.py", "__main__.py"))
    assert not loose, loose


def test_the_web_goes_through_the_service():
    """Routes and health checks call service methods: never the store or Celery directly."""
    reached = []
    for path in (ROOT / "web").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("store", "celery", "redis"):
                reached.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    ("worker.core.store", "worker.core.lua", "worker.runner")):
                reached.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.module}")
    assert not reached, reached


def test_worker_never_imports_the_web():
    """The web is one caller of the service: nothing in worker/ reaches for it (its errors, its
    statuses, its models), so the CLI and the Celery worker run without Flask's side."""
    found = [f"{p.relative_to(ROOT)} imports {t}" for p in (ROOT / "worker").rglob("*.py")
             for t in _top_level_imports(p) if t == "web" or t.startswith("web.")]
    assert not found, found


def test_runtime_files_never_import_devtools():
    """devtools/ is the developer's tooling, not shipped: nothing the service runs needs it."""
    runtime = [p for package in PRODUCT for p in (ROOT / package).rglob("*.py")]
    runtime += [ROOT / "gunicorn.conf.py", ROOT / "flowerconfig.py"]
    found = [f"{p.relative_to(ROOT)} imports {t}" for p in runtime
             for t in _top_level_imports(p) if t == "devtools" or t.startswith("devtools.")]
    assert not found, found


def _top_level_imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            out.add(node.module or "")
    return out


def says_why_it_is_long(path: Path) -> bool:
    """The module docstring's first paragraph has a line `Over 300 lines because <reason>`."""
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    first_paragraph = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    return any(OVER_MARKER.match(line) for line in first_paragraph.splitlines())


def test_no_module_is_over_300_lines_unless_it_says_why():
    long = [f"{path.relative_to(ROOT)}: {lines} lines"
            for package in PRODUCT for path in sorted((ROOT / package).rglob("*.py"))
            if (lines := len(path.read_text().splitlines())) > MAX_LINES
            and not says_why_it_is_long(path)]
    assert not long, (f"over {MAX_LINES} lines, and the docstring's first paragraph does not "
                      f"say why ('Over {MAX_LINES} lines because …'): {long}")


def test_the_marker_is_read_from_the_first_paragraph_only(tmp_path):
    marked = tmp_path / "marked.py"
    marked.write_text('"""A module.\nOver 300 lines because it must be.\n\nMore."""\n')
    later = tmp_path / "later.py"
    later.write_text('"""A module.\n\nOver 300 lines because it must be."""\n')
    bare = tmp_path / "bare.py"
    bare.write_text('"""A module.\nOver 300 lines because\n"""\n')
    assert says_why_it_is_long(marked)
    assert not says_why_it_is_long(later)
    assert not says_why_it_is_long(bare)


def test_the_run_store_holds_a_runs_lifecycle_only():
    """The scan, the rate limiter, the stream reader, liveness and the gauges live with the
    modules that use them (on `RunStore.connection`), not as more RunStore methods."""
    tree = ast.parse((ROOT / "worker" / "core" / "store.py").read_text())
    store = next(node for node in tree.body
                 if isinstance(node, ast.ClassDef) and node.name == "RunStore")
    public = [node.name for node in store.body
              if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
              and not node.name.startswith("_")]
    assert len(public) <= RUN_STORE_MAX_PUBLIC, (len(public), public)
