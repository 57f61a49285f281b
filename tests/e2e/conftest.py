"""The e2e builder: write Pfyfiles into tmp_path, run the real ``pf``, look at the result.

Every test runs the installed console script (``.venv/bin/pf``) as a user would, with
the ``isolate`` fixture's environment (PF_CACHE_DIR in tmp_path, NO_COLOR), and
checks stdout, stderr and the exit code (after just's ``Test``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

PF = str(Path(sys.executable).with_name("pf"))


class Project:
    """A directory holding Pfyfiles; ``run`` starts the real ``pf`` in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, name: str, text: str, mode: int | None = None) -> Path:
        """Write ``text`` (dedented) to ``name`` under the project, parents created."""
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        if mode is not None:
            path.chmod(mode)
        return path

    def pfyfile(self, text: str, name: str = "Pfyfile.pf") -> Path:
        return self.write(name, text)

    def run(
        self,
        *args: str,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [PF, *args],
            cwd=cwd or self.root,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    return Project(root)
