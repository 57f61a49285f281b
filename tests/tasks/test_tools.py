"""Plans, run_plan, tool lookup and argument parsing shared by every task verb."""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

import pf.tasks
from pf.tasks import (
    BadArgument,
    Context,
    Plan,
    Run,
    Say,
    Tool,
    ToolMissing,
    WriteFile,
    find_tool,
    split_args,
    suggest,
)
from pf.tasks.tools import parse_bool, parse_jobs, parse_list, parse_mode

from .conftest import Ran

Runner = Callable[[Plan], Ran]


def test_exported_members() -> None:
    exported = pf.tasks.__all__
    assert len(exported) == len(set(exported))
    assert all(hasattr(pf.tasks, name) for name in exported)
    public = {
        name
        for name, value in vars(pf.tasks).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(exported)


@pytest.mark.parametrize(
    ("words", "positional", "options"),
    [
        ([], (), {}),
        (["build", "jobs=2"], ("build",), {"jobs": "2"}),
        (["--jobs=2", "--release"], ("--release",), {"jobs": "2"}),
        (["CFLAGS=-O2 -g", "a=b=c"], (), {"CFLAGS": "-O2 -g", "a": "b=c"}),
        (["=x", "-D=y", "1a=2"], ("=x", "-D=y", "1a=2"), {}),
        (['excludes=["a",', '"b"]', "tail"], ("tail",), {"excludes": '["a", "b"]'}),
        (["excludes=[a", "b"], (), {"excludes": "[a b"}),
    ],
)
def test_split_args(words: list[str], positional: tuple[str, ...], options: dict[str, str]) -> None:
    args = split_args(words)
    assert args.positional == positional
    assert dict(args.options) == options


def test_args_extra_keeps_order() -> None:
    args = split_args(["jobs=2", "B=1", "A=2"])
    assert list(args.extra({"jobs"})) == ["B", "A"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ("*.log", ["*.log"]),
        ("a,b", ["a", "b"]),
        ('["*.log", "*.tmp"]', ["*.log", "*.tmp"]),
        ("['a b', c]", ["a b", "c"]),
        ("[]", []),
    ],
)
def test_parse_list(value: str | None, expected: list[str]) -> None:
    assert parse_list(value) == expected


def test_parse_scalars() -> None:
    assert parse_jobs("v", None) is None
    assert parse_jobs("v", "8") == 8
    assert parse_bool("v", "k", "Yes") is True
    assert parse_bool("v", "k", None, default=True) is True
    assert parse_mode("v", "0o644") == 0o644
    assert parse_mode("v", "755") == 0o755
    with pytest.raises(BadArgument, match="v: k must be true or false"):
        parse_bool("v", "k", "sure")


def test_suggest() -> None:
    names = ["install", "remove", "restart"]
    assert suggest("instal", names) == ["install"]
    assert suggest("REMOVE", names) == ["remove"]
    assert suggest("xyzzy", names) == []


def test_find_tool_prefers_path_name_then_absolute(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "mytool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    ctx = Context(tmp_path, {"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path)})
    assert find_tool(Tool("mytool", ("nope", "mytool"), "x"), ctx) == "mytool"
    home_spec = Tool("mytool", ("nope", "$HOME/bin/mytool"), "x")
    assert find_tool(home_spec, replace(ctx, env={"PATH": "/nonexistent", "HOME": str(tmp_path)}))
    with pytest.raises(ToolMissing) as info:
        find_tool(Tool("mytool", ("nope",), "apt-get install -y mytool"), ctx, "testing")
    assert str(info.value) == "mytool: not found on PATH (needed for testing)"
    assert info.value.code == "tool-missing"


def test_run_plan_applies_steps_in_order_and_stops_at_failure(tmp_path: Path, run: Runner) -> None:
    env = {"PATH": "/usr/bin:/bin", "WHO": "pf"}
    steps = (
        Say("starting"),
        WriteFile(tmp_path / "sub" / "s.sh", 'echo "hello $WHO"; echo oops >&2\n'),
        Run(("sh", "sub/s.sh"), tmp_path, env),
        Run(("sh", "-c", "exit 5"), tmp_path, env),
        Run(("touch", "never"), tmp_path, env),
    )
    ran = run(Plan(steps))
    assert ran.out == ["starting", "hello pf"]
    assert ran.err == ["oops"]
    assert ran.result.code == 5 and not ran.result.ok
    assert ran.result.failed == steps[3]
    assert len(ran.result.completed) == 2
    assert ran.echoed == [
        "# starting",
        f"write {tmp_path / 'sub' / 's.sh'}",
        "sh sub/s.sh",
        "sh -c 'exit 5'",
    ]
    assert not (tmp_path / "never").exists()


def test_signal_exit_code_is_shell_style(tmp_path: Path, run: Runner) -> None:
    ran = run(Plan((Run(("sh", "-c", "kill -TERM $$"), tmp_path, {"PATH": "/usr/bin:/bin"}),)))
    assert ran.result.code == 128 + 15


def test_context_paths(tmp_path: Path) -> None:
    ctx = Context(tmp_path, {"HOME": "/home/u"})
    assert ctx.resolve("a/b") == tmp_path / "a/b"
    assert ctx.resolve("/etc/x") == Path("/etc/x")
    assert ctx.resolve("~/x") == Path("/home/u/x")
    assert ctx.at("sub").cwd == tmp_path / "sub"
    assert ctx.command(["x"], A="1").env == {"HOME": "/home/u", "A": "1"}


def test_plans_concatenate(tmp_path: Path) -> None:
    a = Plan((Say("a"),))
    b = Plan((Run(("true",), tmp_path, {}),))
    assert (a + b).steps == a.steps + b.steps
    assert (a + b).argvs == [["true"]]
