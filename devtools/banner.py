"""What `make run` prints before it starts the processes: where the page, the API and Flower
listen, Flower's credentials (created on the first run: a random password per checkout), and
a first request to try.

The values come from gunicorn.conf.py and flowerconfig.py, the files the processes themselves
load, so each default (WEB_BIND, FLOWER_PORT) is written once.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from devtools import flower_auth
from worker.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def settings(filename: str) -> dict[str, Any]:
    """The names a config file at the repository root defines, as the process would see them."""
    return runpy.run_path(str(ROOT / filename))


def banner() -> str:
    flower_auth.ensure()
    web = settings("gunicorn.conf.py")["bind"][0]
    flower = settings("flowerconfig.py")
    worker = Settings.from_env()
    return "\n".join([
        f"Page:   http://{web}/",
        f"API:    http://{web}/api/workflows   (contract: http://{web}/openapi.json)",
        f"Flower: http://{flower['address']}:{flower['port']}/  "
        f"(user:password {','.join(flower['basic_auth'])})",
        f"Metrics: http://{web}/metrics and the worker's "
        f"http://{worker.worker_metrics_address}:{worker.worker_metrics_port}/metrics",
        f"Try:    curl -X POST -H 'Content-Type: application/json' "
        f"http://{web}/api/workflows/echo/test-runs -d '{{\"input\":{{\"hi\":1}}}}'",
    ])


if __name__ == "__main__":
    print(banner())
