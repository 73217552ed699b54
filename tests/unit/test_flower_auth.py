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


@pytest.mark.parametrize("given", ["admin:,ops:Secret1", "admin:pw,:Secret1", "ops:Secret1,",
                                   "admin", ":", "admin: ", " :pw"])
def test_a_pair_without_a_user_or_a_password_is_refused(no_credentials, monkeypatch, given):
    """Flower would let `admin` in with an empty password (FLOWER_BASIC_AUTH='admin:,…')."""
    monkeypatch.setenv("FLOWER_BASIC_AUTH", given)
    with pytest.raises(SystemExit, match="not user:password") as info:
        runpy.run_path(str(ROOT / "flowerconfig.py"))
    assert "Secret1" not in str(info.value)


def test_several_full_pairs_are_kept(no_credentials, monkeypatch):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", "admin:pw1,ops:Secret1")
    assert runpy.run_path(str(ROOT / "flowerconfig.py"))["basic_auth"] == ["admin:pw1",
                                                                            "ops:Secret1"]
