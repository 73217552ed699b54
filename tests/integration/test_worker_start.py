"""A worker refuses settings it cannot run with, naming the variable, before it consumes."""

from __future__ import annotations

import subprocess

from tests.support.procs import BIN, ROOT, base_env


def test_worker_refuses_to_start_with_a_non_redis_result_backend():
    proc = subprocess.run(
        [str(BIN / "celery"), "-A", "worker", "worker", "--pool", "solo"],
        env=base_env({"CELERY_RESULT_BACKEND": "rpc://"}), cwd=ROOT, capture_output=True,
        text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "CELERY_RESULT_BACKEND: must be a Redis URL" in proc.stdout + proc.stderr
