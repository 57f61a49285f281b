"""Shared fixtures: every test runs with pf's state pointed into its own tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pf.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demos" / "polyglot"


@pytest.fixture(autouse=True)
def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the cache and every PF_* setting at tmp_path, so tests never share state."""
    for name in list(os.environ):
        if name.startswith("PF_"):
            monkeypatch.delenv(name)
    # `make test` runs pytest inside make: its variables would make the tests' own make
    # runs print "Entering directory" lines a user's terminal never shows.
    for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKE_TERMOUT", "MAKE_TERMERR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PF_CACHE_DIR", str(tmp_path / "pf-cache"))
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def settings() -> Settings:
    return load_settings()
