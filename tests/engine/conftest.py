"""Shared by the cache tests: a real compiler behind a wrapper that logs every start."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest


def counting_wrapper(
    path: Path, log: Path, real: str = "/usr/bin/clang-14", version: str | None = None
) -> Path:
    """Write ``path``: it appends each start's arguments to ``log`` (not the --version
    probes) and execs ``real``; ``version`` fakes what the probe reads instead."""
    fake_version = f'if [ "$1" = --version ]; then echo "clang version {version}"; exit 0; fi\n'
    path.write_text(
        "#!/bin/bash\n"
        + (fake_version if version else "")
        + f'[ "$1" = --version ] || echo "$*" >> {log}\n'
        + f'exec {real} "$@"\n'
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Route clang through a counting wrapper, ccache off; returns the log of compiler starts.

    Unconfined (PF_SANDBOX=off): a confined compiler can write nothing outside its
    scratch dir, so the wrapper could not keep its log.
    """
    log = tmp_path / "clang.log"
    log.touch()
    monkeypatch.setenv("PF_TOOL_CLANG", str(counting_wrapper(tmp_path / "clang", log)))
    monkeypatch.setenv("PF_CCACHE", "0")
    monkeypatch.setenv("PF_SANDBOX", "off")
    return log
