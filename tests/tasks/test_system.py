"""System verbs: directory/copy applied for real, sync with rsync, apt/systemctl plans."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pf.tasks import (
    SYSTEM_VERBS,
    BadArgument,
    Context,
    CopyPath,
    MakeDir,
    Plan,
    StepFailed,
    TaskError,
    ToolMissing,
    copy_plan,
    directory_plan,
    sync_plan,
)
from tests.tools import needs_tool

from .conftest import Ran

Runner = Callable[[Plan], Ran]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _pinned(ctx: Context, *tools: str) -> Context:
    pins = {**ctx.settings.tools, **dict.fromkeys(tools, "/bin/true")}
    return replace(ctx, settings=replace(ctx.settings, tools=pins))


# ------------------------------------------------------------------------ directory


def test_directory_creates_parents_with_mode(ctx: Context, work: Path, run: Runner) -> None:
    plan = SYSTEM_VERBS["directory"](["out/a/b", "mode=0750"], ctx)
    assert plan.steps == (MakeDir(work / "out/a/b", 0o750),)
    assert plan.steps[0].describe() == f"mkdir -p -m 750 {work / 'out/a/b'}"
    assert run(plan).result.code == 0
    assert _mode(work / "out/a/b") == 0o750


def test_directory_existing_gets_mode(ctx: Context, work: Path, run: Runner) -> None:
    (work / "d").mkdir(mode=0o755)
    run(directory_plan("d", mode=0o700, ctx=ctx))
    assert _mode(work / "d") == 0o700


def test_directory_without_mode_keeps_existing(ctx: Context, work: Path, run: Runner) -> None:
    (work / "d").mkdir()
    (work / "d").chmod(0o711)
    run(SYSTEM_VERBS["directory"](["d"], ctx))
    assert _mode(work / "d") == 0o711


@pytest.mark.parametrize("mode", ["rwx", "0999", "u+x", "12345"])
def test_directory_bad_mode(mode: str, ctx: Context) -> None:
    with pytest.raises(BadArgument, match="mode must be octal"):
        SYSTEM_VERBS["directory"](["d", f"mode={mode}"], ctx)


def test_directory_needs_a_path(ctx: Context) -> None:
    with pytest.raises(BadArgument):
        SYSTEM_VERBS["directory"]([], ctx)


def test_directory_over_a_file_fails_clearly(ctx: Context, work: Path, run: Runner) -> None:
    (work / "f").write_text("")
    with pytest.raises(StepFailed, match="mkdir -p"):
        run(directory_plan("f/sub", ctx=ctx))


# ----------------------------------------------------------------------------- copy


def test_copy_file_with_mode(ctx: Context, work: Path, run: Runner) -> None:
    (work / "app.conf").write_text("x=1\n")
    plan = SYSTEM_VERBS["copy"](["app.conf", "etc/app/app.conf", "mode=0640"], ctx)
    assert plan.steps == (CopyPath(work / "app.conf", work / "etc/app/app.conf", 0o640),)
    run(plan)
    assert (work / "etc/app/app.conf").read_text() == "x=1\n"
    assert _mode(work / "etc/app/app.conf") == 0o640


def test_copy_into_existing_directory(ctx: Context, work: Path, run: Runner) -> None:
    (work / "a.txt").write_text("a")
    (work / "dest").mkdir()
    run(copy_plan("a.txt", "dest", ctx=ctx))
    assert (work / "dest" / "a.txt").read_text() == "a"


def test_copy_tree(ctx: Context, work: Path, run: Runner) -> None:
    (work / "site" / "css").mkdir(parents=True)
    (work / "site" / "index.html").write_text("<h1>")
    (work / "site" / "css" / "a.css").write_text("a{}")
    run(copy_plan("site", "public", ctx=ctx))
    assert (work / "public" / "css" / "a.css").read_text() == "a{}"
    assert (work / "public" / "index.html").read_text() == "<h1>"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another owner needs root")
def test_copy_owner(ctx: Context, work: Path, run: Runner) -> None:
    (work / "a").write_text("a")
    run(copy_plan("a", "b", user="nobody", group="nogroup", ctx=ctx))
    st = (work / "b").stat()
    import grp
    import pwd

    assert pwd.getpwuid(st.st_uid).pw_name == "nobody"
    assert grp.getgrgid(st.st_gid).gr_name == "nogroup"


def test_copy_unknown_user(ctx: Context, work: Path, run: Runner) -> None:
    (work / "a").write_text("a")
    with pytest.raises(StepFailed, match="owner no-such-user-pf:"):
        run(copy_plan("a", "b", user="no-such-user-pf", ctx=ctx))


def test_copy_missing_source(ctx: Context, run: Runner) -> None:
    with pytest.raises(StepFailed, match=r"copy .*missing"):
        run(SYSTEM_VERBS["copy"](["missing", "x"], ctx))


def test_copy_needs_two_paths(ctx: Context) -> None:
    with pytest.raises(BadArgument, match="source and a destination"):
        SYSTEM_VERBS["copy"](["only-one"], ctx)


# ----------------------------------------------------------------------------- sync


@needs_tool("rsync")
def test_sync_local_with_rsync(ctx: Context, work: Path, run: Runner) -> None:
    (work / "a" / "sub").mkdir(parents=True)
    (work / "a" / "keep.txt").write_text("k")
    (work / "a" / "sub" / "deep.txt").write_text("d")
    (work / "a" / "debug.log").write_text("l")
    (work / "a" / "x.tmp").write_text("t")
    (work / "b").mkdir()
    (work / "b" / "stale.txt").write_text("s")

    dry = run(SYSTEM_VERBS["sync"](["src=a/", "dest=b/", "delete", "dry"], ctx))
    assert dry.result.code == 0, dry.err
    assert (work / "b" / "stale.txt").exists() and not (work / "b" / "keep.txt").exists()

    # The lexer may split a spaced list; split_args joins it back.
    words = ["src=a/", "dest=b/", 'excludes=["*.log",', '"*.tmp"]', "delete"]
    plan = SYSTEM_VERBS["sync"](words, ctx)
    assert plan.argvs == [
        ["rsync", "-a", "--delete", "--exclude", "*.log", "--exclude", "*.tmp", "--", "a/", "b/"]
    ]
    ran = run(plan)
    assert ran.result.code == 0, ran.err
    assert sorted(str(p.relative_to(work / "b")) for p in (work / "b").rglob("*")) == [
        "keep.txt",
        "sub",
        "sub/deep.txt",
    ]


def test_sync_remote_builds_ssh_form(ctx: Context) -> None:
    words = ["src=dist/", "dest=/srv/app", "host=10.0.0.5", "user=deploy", "port=2222"]
    words += ["excludes=[.git, node_modules]", "delete=true", "verbose"]
    plan = SYSTEM_VERBS["sync"](words, _pinned(ctx, "rsync", "ssh"))
    assert plan.argvs == [
        [
            *("/bin/true", "-az", "-v", "--delete", "--exclude", ".git"),
            *("--exclude", "node_modules", "-e", "ssh -p 2222"),
            *("--", "dist/", "deploy@10.0.0.5:/srv/app"),
        ]
    ]
    no_user = sync_plan("a", "b", host="h", ctx=_pinned(ctx, "rsync", "ssh"))
    assert no_user.argvs[0][-2:] == ["a", "h:b"]


def test_sync_errors(ctx: Context) -> None:
    pinned = _pinned(ctx, "rsync", "ssh")
    with pytest.raises(BadArgument, match="src= and dest="):
        SYSTEM_VERBS["sync"](["src=a"], pinned)
    with pytest.raises(BadArgument, match="port must be a number"):
        SYSTEM_VERBS["sync"](["src=a", "dest=b", "host=h", "port=ssh"], pinned)
    with pytest.raises(BadArgument, match="dry must be true or false"):
        SYSTEM_VERBS["sync"](["src=a", "dest=b", "dry=perhaps"], pinned)


def test_sync_missing_rsync_names_install(ctx: Context, tmp_path: Path) -> None:
    bare = Context(ctx.cwd, {"PATH": str(tmp_path)}, ctx.settings)
    with pytest.raises(ToolMissing) as info:
        SYSTEM_VERBS["sync"](["src=a", "dest=b"], bare)
    assert info.value.install == "apt-get install -y rsync"
    assert info.value.hint == "install it with: apt-get install -y rsync"


# ------------------------------------------------------------------ packages, service


def test_packages_plan_is_noninteractive_apt(ctx: Context) -> None:
    plan = SYSTEM_VERBS["packages"](["install", "curl", "jq"], ctx)
    assert plan.argvs == [["apt-get", "install", "-y", "-q", "curl", "jq"]]
    assert plan.runs[0].env["DEBIAN_FRONTEND"] == "noninteractive"
    assert SYSTEM_VERBS["packages"](["remove", "jq"], ctx).argvs[0][:2] == ["apt-get", "remove"]


def _only(ctx: Context, tmp: Path, *programs: str) -> Context:
    """``ctx`` with a PATH holding just ``programs`` (never run: the plan is looked at)."""
    tmp.mkdir(exist_ok=True)
    for name in programs:
        path = tmp / name
        path.write_text("#!/bin/sh\nexit 99\n")
        path.chmod(0o755)
    return replace(ctx, env={**ctx.env, "PATH": str(tmp)})


@pytest.mark.parametrize(
    ("programs", "install", "remove"),
    [
        (["pacman", "apk"], ["pacman", "-S", "--noconfirm", "--needed"], ["pacman", "-R"]),
        (["apk", "brew"], ["apk", "add"], ["apk", "del"]),
        (["zypper"], ["zypper", "--non-interactive", "install"], ["zypper", "--non-interactive"]),
        (["yum", "dnf"], ["dnf", "install", "-y"], ["dnf", "remove"]),
        (["brew"], ["brew", "install"], ["brew", "uninstall"]),
    ],
)
def test_packages_use_the_package_manager_found_first(
    ctx: Context, tmp_path: Path, programs: list[str], install: list[str], remove: list[str]
) -> None:
    only = _only(ctx, tmp_path, *programs)
    assert SYSTEM_VERBS["packages"](["install", "a", "b"], only).argvs == [[*install, "a", "b"]]
    assert SYSTEM_VERBS["packages"](["remove", "a"], only).argvs[0][: len(remove)] == remove


def test_packages_without_a_package_manager_say_so(ctx: Context, tmp_path: Path) -> None:
    with pytest.raises(TaskError) as info:
        SYSTEM_VERBS["packages"](["install", "jq"], _only(ctx, tmp_path))
    assert info.value.message == "packages: no system package manager found on PATH"
    assert info.value.hint == (
        "pf looks for apt-get, dnf, yum, zypper, pacman, apk, brew; "
        "install the packages by hand on this machine"
    )


def test_packages_as_a_user_need_sudo(ctx: Context, tmp_path: Path) -> None:
    apt = replace(_only(ctx, tmp_path, "apt-get"), privileged=False)
    with pytest.raises(TaskError) as info:
        SYSTEM_VERBS["packages"](["install", "jq"], apt)
    assert info.value.message == "packages: install with apt-get needs root, and pf runs as a user"
    assert info.value.hint == "run pf as root, or add sudo=true to the command line"
    brew = replace(_only(ctx, tmp_path / "brew", "brew"), privileged=False)
    assert SYSTEM_VERBS["packages"](["install", "jq"], brew).argvs == [["brew", "install", "jq"]]


def test_packages_errors(ctx: Context) -> None:
    with pytest.raises(BadArgument) as info:
        SYSTEM_VERBS["packages"](["instal", "curl"], ctx)
    assert info.value.hint == "did you mean 'install'?"
    with pytest.raises(BadArgument, match="at least one package"):
        SYSTEM_VERBS["packages"](["install"], ctx)
    with pytest.raises(BadArgument):
        SYSTEM_VERBS["packages"]([], ctx)


def test_service_plan(ctx: Context) -> None:
    plan = SYSTEM_VERBS["service"](["restart", "nginx"], _pinned(ctx, "systemctl"))
    assert plan.argvs == [["/bin/true", "restart", "nginx"]]


def test_service_errors(ctx: Context) -> None:
    pinned = _pinned(ctx, "systemctl")
    with pytest.raises(BadArgument) as info:
        SYSTEM_VERBS["service"](["restrat", "nginx"], pinned)
    assert info.value.hint == "did you mean 'restart'?"
    with pytest.raises(BadArgument, match="service ACTION NAME"):
        SYSTEM_VERBS["service"](["restart"], pinned)


def test_service_without_systemctl(ctx: Context, tmp_path: Path) -> None:
    bare = Context(ctx.cwd, {"PATH": str(tmp_path)}, ctx.settings)
    with pytest.raises(ToolMissing) as info:
        SYSTEM_VERBS["service"](["start", "nginx"], bare)
    assert info.value.tool == "systemctl"
    assert info.value.install == "apt-get install -y systemd"
    assert "needed for service" in info.value.message


def test_names_a_tool_would_read_as_its_options_are_refused(ctx: Context) -> None:
    sync = _pinned(ctx, "rsync", "ssh")
    for verb, words in (
        ("packages", ["install", "jq", "-oAPT::Update::Pre-Invoke::=touch x"]),
        ("service", ["restart", "--root=/tmp"]),
        ("sync", ["src=a", "dest=b", "host=-oProxyCommand=touch x"]),
        ("sync", ["src=a", "dest=b", "host=h", "user=-oProxyCommand=touch x"]),
    ):
        with pytest.raises(BadArgument, match="starts with '-'"):
            SYSTEM_VERBS[verb](words, sync if verb == "sync" else _pinned(ctx, "systemctl"))
    # A path that starts with '-' stays a path: rsync reads it after `--`.
    assert SYSTEM_VERBS["sync"](["src=--rsh=sh", "dest=b"], sync).argvs[0][-3:] == [
        "--",
        "--rsh=sh",
        "b",
    ]
