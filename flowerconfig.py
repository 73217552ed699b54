"""Flower's settings for the Procfile's flower line (`--conf=flowerconfig.py`).

FLOWER_PORT (and FLOWER_ADDRESS) have their defaults here and nowhere else. Flower's basic
auth has no default: FLOWER_BASIC_AUTH, else this checkout's random password that `make run`
created (read by worker/client/flower.py); with neither, Flower refuses to start. The
credentials reach Flower through the environment and this file, never its argv, where `ps`
would show them. Flower reads FLOWER_* variables itself, but applies this file after them, so
each setting here reads its variable first: an empty or unset one takes the default. Under
LOG_FORMAT=json Flower's own log lines are JSON as well (worker/client/flower.py).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the checkout, when the package is not installed

from worker.client.flower import basic_auth as _pairs  # noqa: E402
from worker.client.flower import configure_logs, credentials  # noqa: E402
from worker.core.settings import Settings  # noqa: E402

configure_logs(Settings.from_env().log_format)  # LOG_FORMAT=json: Flower's lines too

address = os.environ.get("FLOWER_ADDRESS") or "127.0.0.1"
port = int(os.environ.get("FLOWER_PORT") or "5555")
_credentials = credentials(HERE)
if not _credentials:
    raise SystemExit("flower: refusing to start without auth: set FLOWER_BASIC_AUTH="
                     "user:password, or run `make run` once (it creates .flower-auth)")
try:
    basic_auth = _pairs(_credentials)  # user:password, each with both
except ValueError as exc:
    raise SystemExit(f"flower: refusing to start: {exc}") from None
