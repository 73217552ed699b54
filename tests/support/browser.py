"""Headless Debian chromium for the page's tests, and where their screenshots go."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support.procs import ROOT

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
#: flags that work on these machines: no sandbox (root), and no background connections to a
#: network that is closed (Playwright gives each launch a fresh, empty profile)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: git-ignored; each browser test saves a screenshot of each state it checks
SCREENSHOTS = ROOT / "test-output" / "screenshots"


@contextmanager
def launch() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"no chromium at {CHROMIUM}: `make test` installs it (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Any, name: str, part: Any = None) -> Path:
    """The viewport, or only `part` (a locator: the workflow's card) when given."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^\w.-]", "_", name) + ".png")
    (part or page).screenshot(path=str(path))
    return path
