"""gunicorn.conf.py's hooks that are ours to test without a server."""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def conf() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_worker_freezes_what_its_app_loaded():
    """Full collections stop scanning the loaded app (a worker's stall, measured)."""
    hook = conf().post_worker_init
    kept = object.__new__(type("Loaded", (), {}))  # tracked, as the app's objects are
    assert gc.is_tracked(kept)
    before = gc.get_freeze_count()
    try:
        hook(None)
        assert gc.get_freeze_count() > before
        assert not any(o is kept for o in gc.get_objects())  # frozen: no generation holds it
    finally:
        gc.unfreeze()
    assert any(o is kept for o in gc.get_objects())
