"""Flower's credentials, for the Procfile's flower process (flowerconfig.py): FLOWER_BASIC_AUTH
(`user:password`) when set, else the checkout's own random password in `.flower-auth`
(git-ignored, mode 0600), which `make run` creates on its first start (devtools/flower_auth.py).
There is no shared default: Flower refuses to start without one. The credentials reach Flower
through its config file, never its argv, where `ps` would show them. And Flower's own log lines
under LOG_FORMAT=json."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..core.logs import JsonFormatter, configure_logging

#: the file's name beside flowerconfig.py (FLOWER_AUTH_FILE names another, for tests)
AUTH_FILE = ".flower-auth"


def credentials_file(checkout: Path) -> Path:
    """`.flower-auth` at the checkout's root, unless FLOWER_AUTH_FILE names another."""
    return Path(os.environ.get("FLOWER_AUTH_FILE") or checkout / AUTH_FILE)


def credentials(checkout: Path) -> str | None:
    """`user:password` for Flower, or None when there is none."""
    given = os.environ.get("FLOWER_BASIC_AUTH", "").strip()
    if given:
        return given
    try:
        saved = credentials_file(checkout).read_text().strip()
    except FileNotFoundError:
        return None
    return saved or None


def basic_auth(credentials: str) -> list[str]:
    """Flower's `basic_auth`: the comma-separated `user:password` pairs, each with a user and a
    password. Flower itself would accept `admin:` and then let anyone in as admin with an empty
    password, so any pair without both is a ValueError, naming its position, never its text."""
    pairs = credentials.split(",")
    for n, pair in enumerate(pairs, 1):
        user, sep, password = pair.partition(":")
        if not (sep and user.strip() and password.strip()):
            raise ValueError(f"FLOWER_BASIC_AUTH: pair {n} of {len(pairs)} is not user:password "
                             "with both a user and a password")
    return pairs


def configure_logs(log_format: str) -> None:
    """LOG_FORMAT for Flower's own lines (flowerconfig.py calls it). Flower's server, Tornado,
    gives the root logger its coloured text handler when it first parses the command line,
    before it reads this config file: in JSON mode that handler (or ours, if there is none)
    formats every line — Flower's, Tornado's, Celery's, Python's warnings — as one JSON object
    with `time`, `level`, `logger` and `message`."""
    if log_format != "json":
        return
    logging.captureWarnings(True)
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    configure_logging(logging.INFO, log_format)  # no handler yet: ours
