"""Every ``pf compile`` / ``pf build`` line of README.md's usage section, run as written.

The README's examples are what users paste first; running them here keeps the README
and the command line from drifting apart.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO, ROOT


def _examples() -> list[tuple[list[str], str]]:
    """(argv after `pf`, the comment) for each example line in the README's sh blocks."""
    text = (ROOT / "README.md").read_text()
    lines: list[tuple[list[str], str]] = []
    for block in text.split("```sh\n")[1:]:
        for line in block.split("```")[0].splitlines():
            command, _, comment = line.partition("#")
            words = shlex.split(command)
            if words[:2] in (["pf", "compile"], ["pf", "build"]):
                lines.append((words[1:], comment.strip()))
    return lines


EXAMPLES = _examples()


def test_the_readme_has_compile_and_build_examples() -> None:
    assert {argv[0] for argv, _ in EXAMPLES} == {"compile", "build"}


@pytest.mark.parametrize(
    ("argv", "comment"), EXAMPLES, ids=[" ".join(argv) for argv, _ in EXAMPLES]
)
def test_a_readme_example_runs_as_written(argv: list[str], comment: str, tmp_path: Path) -> None:
    # The examples name the demo by its repository path and its files by their bare names.
    shutil.copytree(DEMO, tmp_path / "demos" / "polyglot", ignore=shutil.ignore_patterns("web"))
    for source in DEMO.glob("*/*.*"):
        if source.parent.name != "web":
            shutil.copy(source, tmp_path / source.name)
    done = subprocess.run(
        [sys.executable, "-m", "pf", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    if comment.startswith("->"):
        produced = comment.removeprefix("->").split()[0]
        assert (tmp_path / produced).stat().st_size > 0
    if "--json" in argv:
        assert json.loads(done.stdout)["status"] == "completed"
    if argv[0] == "build":
        built = re.search(r"built (\d+) of (\d+) for project polyglot", done.stdout)
        assert built and built[1] == built[2] != "0"
