"""Flower has no shared default password: a random one per checkout, and no start without."""

from __future__ import annotations

import runpy
import stat

import pytest

from devtools import flower_auth
from tests.support.procs import ROOT


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv("FLOWER_BASIC_AUTH", raising=False)
    monkeypatch.setenv("FLOWER_AUTH_FILE", str(tmp_path / "auth"))
    return tmp_path / "auth"


def test_flower_refuses_to_start_without_auth(no_credentials):
    with pytest.raises(SystemExit, match="refusing to start without auth"):
        runpy.run_path(str(ROOT / "flowerconfig.py"))


def test_make_run_creates_a_private_random_password_once(no_credentials, tmp_path,
                                                         monkeypatch):
    first = flower_auth.ensure()
    assert first.startswith("admin:") and len(first) > 20 and first != "admin:admin"
    assert stat.S_IMODE(no_credentials.stat().st_mode) == 0o600
    assert flower_auth.ensure() == first
    assert runpy.run_path(str(ROOT / "flowerconfig.py"))["basic_auth"] == [first]
    monkeypatch.setenv("FLOWER_AUTH_FILE", str(tmp_path / "other"))
    assert flower_auth.ensure() != first


def test_the_environment_wins(no_credentials, monkeypatch):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "ops:pw")
    assert runpy.run_path(str(ROOT / "flowerconfig.py"))["basic_auth"] == ["ops:pw"]
    assert not no_credentials.exists()
