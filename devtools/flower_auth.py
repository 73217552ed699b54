"""What `make run` does for Flower's credentials: create this checkout's random password in
`.flower-auth` (git-ignored, mode 0600) on its first start, unless FLOWER_BASIC_AUTH or the
file already gives one. Reading them is the runtime's (worker/client/flower.py)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from worker.client.flower import credentials, credentials_file

ROOT = Path(__file__).resolve().parents[1]
USER = "admin"


def ensure() -> str:
    """The credentials, creating this checkout's random password on first use."""
    found = credentials(ROOT)
    if found:
        return found
    path = credentials_file(ROOT)
    value = f"{USER}:{secrets.token_urlsafe(18)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value
