"""Parameter values on the real command line: negative numbers after ``--key``."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Project

SHOW = """
task show n level="1" name="n"
  shell echo "level=$level name=$name n=${n:-unset}"
end
"""


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--level", "-1"], "level=-1 name=n n=unset"),
        (["--level", "-0.5", "--name", "-.5"], "level=-0.5 name=-.5 n=unset"),
        (["--level=-1"], "level=-1 name=n n=unset"),
        (["level=-1"], "level=-1 name=n n=unset"),
        (["-n", "-1"], "level=1 name=n n=-1"),
        # A bare `--key` before another option is still a switch.
        (["--name", "-n", "-3"], "level=1 name=true n=-3"),
    ],
)
def test_a_negative_number_is_a_value(project: Project, args: list[str], shown: str) -> None:
    project.pfyfile(SHOW)
    done = project.run("show", *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown + "\n"


def test_a_word_that_is_not_a_number_is_still_an_option(project: Project) -> None:
    project.pfyfile(SHOW)
    done = project.run("show", "--level", "-1x")
    assert done.returncode == 2
    assert "error: unknown option `-1x`" in done.stderr
    assert done.stdout == ""
