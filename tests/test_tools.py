"""Strict mode (tests/tools.py): under PF_STRICT_TOOLS=1 a test skipped for a missing
tool fails, so a green ``make test`` means every toolchain really ran."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NEEDS_A_MISSING_TOOL = """\
from tests.tools import needs_tool


@needs_tool("pf-no-such-tool")
def test_compiles_with_it() -> None:
    pass
"""


def _run(tmp_path: Path, strict: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_needs.py").write_text(NEEDS_A_MISSING_TOOL)
    env = {k: v for k, v in os.environ.items() if k != "PF_STRICT_TOOLS"}
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"),
            *("-p", "tests.conftest", "--rootdir", str(tmp_path), str(tmp_path / "test_needs.py")),
        ],
        cwd=ROOT,
        env={**env, "PF_STRICT_TOOLS": strict},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# A skip happens while the test is set up, so strict mode reports it as an error.
@pytest.mark.parametrize(("strict", "code", "said"), [("0", 0, "1 skipped"), ("1", 1, "1 error")])
def test_a_missing_tool_skips_but_fails_under_strict_mode(
    tmp_path: Path, strict: str, code: int, said: str
) -> None:
    done = _run(tmp_path, strict)
    assert done.returncode == code, done.stdout + done.stderr
    assert said in done.stdout
    assert ("set-up should have installed this tool" in done.stdout) == (strict == "1")
