"""Command-line words -> invocations: the four parameter forms, groups, flags, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from pf.dsl import parse_text
from pf.errors import UsageError
from pf.tasks.params import Flags, parse_invocations

TEXT = """
task build target="wasm" o="1" jobs="2" [alias b]
  shell echo
end
task test
  shell echo
end
task web
  shell echo top-level web
end
"""


@pytest.fixture
def pfyfile(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "Pfyfile.web.pf").write_text("task build-rust\n  shell echo\nend\n")
    return parse_text(TEXT, tmp_path / "Pfyfile.pf", siblings=True)


def _parse(pfyfile, *words: str) -> tuple[list[tuple[str, dict[str, str]]], Flags]:  # type: ignore[no-untyped-def]
    flags = Flags()
    out = parse_invocations(pfyfile, list(words), flags)
    return [(f"{i.task.group or ''}:{i.task.name}", i.params) for i in out], flags


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["build", "target=llvm"], [(":build", {"target": "llvm"})]),
        (["build", "--target=llvm"], [(":build", {"target": "llvm"})]),
        (["build", "--target", "llvm"], [(":build", {"target": "llvm"})]),
        (["build", "-o", "3"], [(":build", {"o": "3"})]),
        (["b", "target=a=b"], [(":build", {"target": "a=b"})]),
        (["build", "--release"], [(":build", {"release": "true"})]),
        (["build", "--release", "--x=1"], [(":build", {"release": "true", "x": "1"})]),
        (
            ["build", "x=1", "test", "build"],
            [(":build", {"x": "1"}), (":test", {}), (":build", {})],
        ),
        (["web", "build-rust"], [("web:build-rust", {})]),
        (["web:build-rust", "test"], [("web:build-rust", {}), (":test", {})]),
        (["web"], [(":web", {})]),  # no task of the group follows: the top-level task
        (["build", "--jobs", "4"], [(":build", {"jobs": "4"})]),  # the task's own `jobs`
        # A negative number after `--key` is its value; any other `-x` is an option.
        (["build", "--target", "-1", "test"], [(":build", {"target": "-1"}), (":test", {})]),
        (["build", "--target", "-0.5"], [(":build", {"target": "-0.5"})]),
        (["build", "--target", "-.5"], [(":build", {"target": "-.5"})]),
        (["build", "--release", "-o", "-2"], [(":build", {"release": "true", "o": "-2"})]),
        (["build", "--release", "--target=-1"], [(":build", {"release": "true", "target": "-1"})]),
    ],
)
def test_forms(pfyfile, words: list[str], expected: list[tuple[str, dict[str, str]]]) -> None:  # type: ignore[no-untyped-def]
    assert _parse(pfyfile, *words)[0] == expected


def test_pf_flags_after_a_task(pfyfile) -> None:  # type: ignore[no-untyped-def]
    found, flags = _parse(pfyfile, "test", "--force", "-j", "3", "-h")
    assert found == [(":test", {})]
    assert (flags.force, flags.jobs, flags.help) == (True, 3, True)
    found, flags = _parse(pfyfile, "test", "-j2")
    assert flags.jobs == 2


@pytest.mark.parametrize(
    ("words", "message", "hint"),
    [
        (["biuld"], "unknown task `biuld`", "did you mean `build`?"),
        (
            ["web", "biuld-rust"],
            "group `web` has no task `biuld-rust`",
            "did you mean `web build-rust`?",
        ),
        (
            ["build-rust"],
            "unknown task `build-rust`",
            "it is in group `web`: run `pf web build-rust`",
        ),
        (["x=1"], "parameter `x=1` comes before any task name", None),
        (["build", "-x"], "`-x` needs a value: write `-x VALUE`", None),
        (["build", "-xyz"], "unknown option `-xyz`", None),
        (["build", "--target", "-1e5"], "unknown option `-1e5`", None),
        (["build", "--target", "-1.2.3"], "unknown option `-1.2.3`", None),
        (["build", "1a=2"], "invalid parameter `1a=2`", None),
        (["build", "-j", "0"], "-j/--jobs takes a positive number, got '0'", None),
        (["--forse", "test"], "unknown option `--forse`", "did you mean `--force`?"),
        (["test", "hosts=u@h:ssh"], "u@h:ssh: `ssh` is not a port number", "a port is 1 to 65535"),
    ],
)
def test_errors(pfyfile, words: list[str], message: str, hint: str | None) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError) as caught:
        _parse(pfyfile, *words)
    assert caught.value.message == message
    if hint is not None:
        assert caught.value.hint == hint
    assert caught.value.exit_code == 2


def test_a_typo_of_a_declared_parameter_warns(pfyfile) -> None:  # type: ignore[no-untyped-def]
    warnings: list[str] = []
    parse_invocations(pfyfile, ["build", "targt=x", "other=1"], Flags(), warnings=warnings)
    assert warnings == [
        "task `build` has no parameter `targt` (did you mean `target`?); "
        "passing it on as a variable"
    ]
