"""Flower's credentials: FLOWER_BASIC_AUTH (`user:password`) when set, else the checkout's own
random password in `.flower-auth` (git-ignored, mode 0600), which `make run` creates on its
first start. There is no shared default: Flower refuses to start without one
(flowerconfig.py). The credentials reach Flower through its config file, never its argv."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
USER = "admin"


def credentials_file() -> Path:
    """`.flower-auth` at the checkout's root (FLOWER_AUTH_FILE names another, for tests)."""
    return Path(os.environ.get("FLOWER_AUTH_FILE") or ROOT / ".flower-auth")


def credentials() -> str | None:
    """`user:password` for Flower, or None when there is none."""
    given = os.environ.get("FLOWER_BASIC_AUTH", "").strip()
    if given:
        return given
    path = credentials_file()
    try:
        saved = path.read_text().strip()
    except FileNotFoundError:
        return None
    return saved or None


def ensure() -> str:
    """The credentials, creating this checkout's random password on first use."""
    found = credentials()
    if found:
        return found
    path = credentials_file()
    value = f"{USER}:{secrets.token_urlsafe(18)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return value
