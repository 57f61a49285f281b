"""Tests that need a tool set-up installs, and strict mode.

A test that needs a tool is marked ``@needs_tool("node")``: it skips where the tool is
missing, with a reason starting ``tool missing:``. Under ``PF_STRICT_TOOLS=1``, which
``make test`` sets because its set-up installs every such tool, tests/conftest.py turns
those skips into failures: a green ``make test`` means every toolchain really ran. Skips
for other reasons (not root, no rustup) stay skips.
"""

from __future__ import annotations

import os
import shutil

import pytest

PREFIX = "tool missing: "
STRICT = os.environ.get("PF_STRICT_TOOLS", "") == "1"


def _missing(names: tuple[str, ...]) -> list[str]:
    # rustup's ~/.cargo/bin counts: tasks may use a rustup toolchain the user installed.
    path = os.environ.get("PATH", "") + os.pathsep + os.path.expanduser("~/.cargo/bin")
    missing = []
    for name in names:
        found = os.path.exists(name) if os.path.isabs(name) else shutil.which(name, path=path)
        if not found:
            missing.append(name)
    return missing


def needs_tool(*names: str, install: str = "scripts/setup.sh test") -> pytest.MarkDecorator:
    """Skip unless every tool in ``names`` (a command on PATH, or an absolute path) exists."""
    missing = _missing(names)
    return pytest.mark.skipif(
        bool(missing), reason=f"{PREFIX}{', '.join(missing)} (installed by: {install})"
    )
