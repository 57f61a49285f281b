"""The start path stays light: ``pf list`` and an up-to-date ``pf TASK`` import nothing heavy.

The task runner's budgets (``pf list`` <= 2.5x a bare interpreter, a no-op run <= 80 ms) leave no
room for argparse, typing, dataclasses, Settings, the sandbox or the engine; these
tests fail as soon as one of them creeps onto the path (bench/tasks_bench.py times it).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEAVY = (
    "argparse",
    "typing",
    "dataclasses",
    "inspect",
    "pathlib",
    "subprocess",
    "pf.config",
    "pf.engine",
    "pf.toolchains",
    "pf.sandbox",
    "pf.tasks.tools",
    "pf.tasks.helpers",
)

PROBE = """
import contextlib, io, sys
from pf.cli.main import run
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = run(sys.argv[1:])
heavy = {heavy!r}
print(code, ",".join(m for m in heavy if m in sys.modules))
"""


def _loaded(cwd: Path, *args: str) -> tuple[str, list[str]]:
    code = PROBE.format(heavy=HEAVY)
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    status, _, modules = done.stdout.strip().partition(" ")
    return status, [m for m in modules.split(",") if m]


def _modules(cwd: Path, *args: str) -> list[str]:
    code = "import sys\nfrom pf.cli.main import run\nrun(sys.argv[1:])\nprint(*sorted(sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return done.stdout.split()


def test_pf_list_and_an_up_to_date_task_import_nothing_heavy(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("a\n")
    (tmp_path / "Pfyfile.pf").write_text(
        "task copy\n  sources src/*.txt\n  generates out/a.txt\n"
        "  shell mkdir -p out && cp src/a.txt out/\nend\n"
    )
    past = 1_700_000_000  # old enough for the listing cache to trust
    os.utime(tmp_path / "Pfyfile.pf", (past, past))
    assert _loaded(tmp_path, "list") == ("0", [])
    # Listed again from the cache: the parser is not even imported.
    assert _loaded(tmp_path, "list") == ("0", [])
    assert "pf.dsl.parser" not in _modules(tmp_path, "list")
    assert _loaded(tmp_path, "copy")[0] == "0"  # runs, and records its fingerprint
    assert _loaded(tmp_path, "copy") == ("0", [])  # up to date: nothing heavy
    assert _loaded(tmp_path, "--complete", "pf co") == ("0", [])
