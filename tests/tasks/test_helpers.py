"""Build helpers: detection order, argv recipes with jobs=N, and real tiny projects built."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from pf.tasks import (
    HELPER_VERBS,
    BadArgument,
    Context,
    NoBuildSystem,
    Plan,
    ToolMissing,
    autobuild_plan,
    build_detect_plan,
    detect_build_system,
    detect_build_systems,
)
from pf.tasks.helpers import DETECTION_ORDER
from tests.tools import needs_tool

from .conftest import Ran

Runner = Callable[[Plan], Ran]

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello from %s"); return 0; }\n'


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _binary_output(path: Path) -> str:
    # Run the built program directly: the test checks the build, not the runner.
    return subprocess.run([str(path)], capture_output=True, text=True, check=True).stdout.strip()


def _pinned(ctx: Context, *tools: str) -> Context:
    """``ctx`` with ``tools`` pinned to /bin/true, for argv recipes of tools not installed."""
    pins = {**ctx.settings.tools, **dict.fromkeys(tools, "/bin/true")}
    return replace(ctx, settings=replace(ctx.settings, tools=pins))


# ------------------------------------------------------------------------ detection

ORDER = [name for name, _ in DETECTION_ORDER]


def test_the_parser_and_the_helpers_know_the_same_verbs() -> None:
    from pf.dsl.verbs import BUILD_HELPERS

    assert sorted(HELPER_VERBS) == sorted(BUILD_HELPERS)
    assert HELPER_VERBS["justfile"] is HELPER_VERBS["just"]


def test_detection_order_is_pfyfile_md() -> None:
    markers = [m for _, ms in DETECTION_ORDER for m in ms]
    documented = [
        "Cargo.toml",
        "go.mod",
        "package.json",
        "setup.py",
        "pyproject.toml",
        "pom.xml",
        "build.gradle",
        "build.gradle.kts",
        "CMakeLists.txt",
        "meson.build",
        "justfile",
        "configure",
        "configure.ac",
        "Makefile",
        "build.ninja",
    ]
    assert [m for m in markers if m in documented] == documented


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (["Cargo.toml", "Makefile"], "cargo"),
        (["Makefile", "go.mod"], "go"),
        (["package.json", "pyproject.toml"], "npm"),
        (["setup.py", "pom.xml"], "python"),
        (["pyproject.toml", "CMakeLists.txt"], "python"),
        (["pom.xml", "build.gradle"], "maven"),
        (["build.gradle.kts", "CMakeLists.txt"], "gradle"),
        (["CMakeLists.txt", "Makefile"], "cmake"),
        (["CMakeLists.txt", "meson.build"], "cmake"),
        (["meson.build", "build.ninja"], "meson"),
        (["justfile", "Makefile"], "just"),
        (["configure", "Makefile"], "autotools"),
        (["configure.ac", "build.ninja"], "autotools"),
        (["Makefile", "build.ninja"], "make"),
        (["GNUmakefile"], "make"),
        (["build.ninja"], "ninja"),
        ([], None),
    ],
)
def test_detection_picks_first_in_order(tmp_path: Path, files: list[str], expected: str) -> None:
    for name in files:
        (tmp_path / name).write_text("")
    found = detect_build_system(tmp_path)
    assert (found.name if found else None) == expected


def test_detection_each_pair_in_order(tmp_path: Path) -> None:
    # Every earlier system beats every later one, whatever else is present.
    for i, (earlier, early_markers) in enumerate(DETECTION_ORDER):
        for later, late_markers in DETECTION_ORDER[i + 1 :]:
            root = tmp_path / f"{earlier}-{later}"
            root.mkdir()
            (root / early_markers[-1]).write_text("")
            (root / late_markers[0]).write_text("")
            assert [b.name for b in detect_build_systems(root)] == [earlier, later]


def test_a_directory_named_like_a_marker_is_not_a_marker(tmp_path: Path) -> None:
    (tmp_path / "configure").mkdir()
    assert detect_build_system(tmp_path) is None


def test_build_detect_prints_all_and_marks_the_pick(ctx: Context, work: Path, run: Runner) -> None:
    _write(work / "proj", {"CMakeLists.txt": "", "Makefile": ""})
    ran = run(HELPER_VERBS["build_detect"](["proj"], ctx))
    assert ran.out == ["cmake (CMakeLists.txt) — autobuild uses this", "make (Makefile)"]
    assert ran.result.code == 0
    empty = run(build_detect_plan(".", ctx=ctx))
    assert empty.out == [f"no build system detected in {work}"]


def test_autobuild_without_build_system(ctx: Context) -> None:
    with pytest.raises(NoBuildSystem) as info:
        autobuild_plan(ctx=ctx)
    assert info.value.hint is not None and "Cargo.toml" in info.value.hint


# --------------------------------------------------------------------- argv recipes


@pytest.mark.parametrize(
    ("verb", "words", "flag", "pins"),
    [
        ("make", ["jobs=4"], ["-j4"], ()),
        ("makefile", ["all", "jobs=4"], ["-j4"], ()),
        ("cmake", ["jobs=4"], ["--parallel", "4"], ()),
        ("meson", ["jobs=4"], ["-j", "4"], ("meson", "ninja")),
        ("ninja", ["jobs=4"], ["-j4"], ("ninja",)),
        ("cargo", ["build", "jobs=4"], ["-j", "4"], ()),
        ("go_build", ["jobs=4"], ["-p", "4"], ("go",)),
        ("autobuild", ["jobs=4"], ["-j4"], ()),
    ],
)
def test_jobs_reaches_argv(
    verb: str, words: list[str], flag: list[str], pins: tuple[str, ...], ctx: Context, work: Path
) -> None:
    (work / "Makefile").write_text("all:\n")
    argv = HELPER_VERBS[verb](words, _pinned(ctx, *pins)).argvs[-1]
    assert any(argv[i : i + len(flag)] == flag for i in range(len(argv)))


def test_make_recipe(ctx: Context) -> None:
    plan = HELPER_VERBS["make"](["build", "test", "CFLAGS=-O2 -g", "jobs=2"], ctx)
    assert plan.argvs == [["make", "-j2", "CFLAGS=-O2 -g", "build", "test"]]
    assert HELPER_VERBS["make"](["parallel=true"], ctx).argvs == [["make", "-j"]]


def test_cmake_recipe(ctx: Context) -> None:
    words = ["src", "build_dir=out", "build_type=Release", "target=app", "jobs=3", "WITH_X=ON"]
    assert HELPER_VERBS["cmake"](words, ctx).argvs == [
        ["cmake", "-S", "src", "-B", "out", "-DCMAKE_BUILD_TYPE=Release", "-DWITH_X=ON"],
        ["cmake", "--build", "out", "--parallel", "3", "--target", "app", "--config", "Release"],
    ]


def test_cargo_recipe_is_offline(ctx: Context) -> None:
    words = ["build", "release=true", "features=a,b", "target=x86_64-unknown-linux-gnu", "locked"]
    words += ["--bin", "app", "verbose=true"]
    assert HELPER_VERBS["cargo"](words, ctx).argvs == [
        [
            "cargo",
            "--offline",
            "build",
            "--release",
            "--features",
            "a,b",
            "--target",
            "x86_64-unknown-linux-gnu",
            "--verbose",
            "locked",
            "--bin",
            "app",
        ]
    ]
    with pytest.raises(BadArgument, match="subcommand"):
        HELPER_VERBS["cargo"]([], ctx)


def test_configure_recipe(ctx: Context, work: Path) -> None:
    (work / "configure").write_text("#!/bin/sh\n")
    words = ["prefix=/opt/x", "ssl=true", "docs=false", "with-zlib=/usr", "jobs=2"]
    assert HELPER_VERBS["configure"](words, ctx).argvs == [
        ["./configure", "--prefix=/opt/x", "--enable-ssl", "--disable-docs", "--with-zlib=/usr"],
        ["make", "-j2"],
    ]
    assert HELPER_VERBS["configure"](["make=false"], ctx).argvs == [["./configure"]]


def test_configure_passes_variables_as_plain_arguments_after_the_options(
    ctx: Context, work: Path
) -> None:
    (work / "configure").write_text("#!/bin/sh\n")
    words = [
        *("CC=gcc", "prefix=/opt/x", "CFLAGS=-O2 -g", "docs=true", "PKG_CONFIG_PATH=/p"),
        *("_X1=y", "LD_=z", "Mixed=1", "_=u", "_1=v", "make=false"),
    ]
    assert HELPER_VERBS["configure"](words, ctx).argvs == [
        [
            *("./configure", "--prefix=/opt/x", "--enable-docs", "--Mixed=1", "--_=u", "--_1=v"),
            *("CC=gcc", "CFLAGS=-O2 -g", "PKG_CONFIG_PATH=/p", "_X1=y", "LD_=z"),
        ]
    ]


def test_configure_from_configure_ac(ctx: Context, work: Path) -> None:
    (work / "configure.ac").write_text("AC_INIT([x], [1])\n")
    plan = HELPER_VERBS["configure"]([], _pinned(ctx, "autoreconf"))
    assert plan.argvs[0] == ["/bin/true", "-fi"]
    assert plan.argvs[1] == ["./configure"]


def test_configure_without_script(ctx: Context) -> None:
    with pytest.raises(BadArgument, match=r"no \./configure"):
        HELPER_VERBS["configure"]([], ctx)


def test_go_build_recipe(ctx: Context) -> None:
    words = ["./cmd/app", "output=bin/app", "tags=netgo", "race=true", "ldflags=-s -w"]
    assert HELPER_VERBS["go_build"](words, _pinned(ctx, "go")).argvs == [
        [
            *("/bin/true", "build", "-o", "bin/app", "-tags", "netgo"),
            *("-race", "-ldflags", "-s -w", "./cmd/app"),
        ]
    ]


def test_just_passes_words_through(ctx: Context) -> None:
    plan = HELPER_VERBS["just"](["mode=fast", "test", "unit"], _pinned(ctx, "just"))
    assert plan.argvs == [["/bin/true", "mode=fast", "test", "unit"]]


def test_ninja_on_a_meson_tree_runs_meson(ctx: Context, work: Path) -> None:
    (work / "meson.build").write_text("")
    plan = HELPER_VERBS["ninja"](["jobs=2"], _pinned(ctx, "meson", "ninja"))
    assert plan.argvs == [
        ["/bin/true", "setup", "builddir", "."],
        ["/bin/true", "compile", "-C", "builddir", "-j", "2"],
    ]


def test_autobuild_defaults_jobs_to_settings(ctx: Context, work: Path) -> None:
    (work / "Makefile").write_text("all:\n")
    ctx = replace(ctx, settings=replace(ctx.settings, jobs=7))
    assert autobuild_plan(ctx=ctx).argvs == [["make", "-j7"]]


def test_autobuild_release_build_types(ctx: Context, work: Path) -> None:
    (work / "CMakeLists.txt").write_text("")
    debug = autobuild_plan(jobs=1, ctx=ctx).argvs[0]
    release = autobuild_plan(jobs=1, release=True, ctx=ctx).argvs[0]
    assert "-DCMAKE_BUILD_TYPE=Debug" in debug
    assert "-DCMAKE_BUILD_TYPE=Release" in release


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        ("pom.xml", ["/bin/true", "-B", "-T", "2", "compile"]),
        ("build.gradle", ["/bin/true", "build", "--parallel", "--max-workers=2"]),
        ("setup.py", ["/bin/true", "setup.py", "build"]),
        ("pyproject.toml", ["/bin/true", "-m", "pip", "install", "-e", "."]),
    ],
)
def test_autobuild_jvm_and_python(
    marker: str, expected: list[str], ctx: Context, work: Path
) -> None:
    (work / marker).write_text("")
    plan = autobuild_plan(jobs=2, ctx=_pinned(ctx, "mvn", "gradle", "python3"))
    assert plan.argvs == [expected]


def test_autobuild_npm_installs_then_builds(ctx: Context, work: Path) -> None:
    (work / "package.json").write_text('{"scripts": {"build": "tsc"}}')
    plan = autobuild_plan(ctx=_pinned(ctx, "npm"))
    assert plan.argvs == [
        ["/bin/true", "install", "--no-audit", "--no-fund"],
        ["/bin/true", "run", "build"],
    ]
    (work / "node_modules").mkdir()
    assert autobuild_plan(ctx=_pinned(ctx, "npm")).argvs == [["/bin/true", "run", "build"]]


@pytest.mark.parametrize(
    ("verb", "words", "tool", "install"),
    [
        ("cmake", [], "cmake", "apt-get install -y cmake"),
        ("make", [], "make", "apt-get install -y make"),
        ("cargo", ["build"], "cargo", "apt-get install -y cargo"),
        ("go_build", [], "go", "apt-get install -y golang-go"),
        ("meson", [], "meson", "apt-get install -y meson"),
        ("ninja", [], "ninja", "apt-get install -y ninja-build"),
        ("just", [], "just", "python3 -m pip install rust-just"),
    ],
)
def test_missing_tool_names_install_command(
    verb: str, words: list[str], tool: str, install: str, ctx: Context, tmp_path: Path
) -> None:
    bare = Context(ctx.cwd, {"PATH": str(tmp_path), "HOME": str(tmp_path)}, ctx.settings)
    with pytest.raises(ToolMissing) as info:
        HELPER_VERBS[verb](words, bare)
    assert info.value.tool == tool
    assert info.value.install == install


def test_pinned_tool_that_is_not_executable(ctx: Context, tmp_path: Path) -> None:
    broken = replace(ctx, settings=replace(ctx.settings, tools={"make": str(tmp_path / "nope")}))
    with pytest.raises(ToolMissing, match="PF_TOOL_MAKE="):
        HELPER_VERBS["make"]([], broken)


@pytest.mark.parametrize("words", [["jobs=0"], ["jobs=many"], ["jobs=-2"]])
def test_bad_jobs(words: list[str], ctx: Context) -> None:
    with pytest.raises(BadArgument, match="jobs must be a positive integer"):
        HELPER_VERBS["make"](words, ctx)


def test_bad_release(ctx: Context, work: Path) -> None:
    (work / "Makefile").write_text("all:\n")
    with pytest.raises(BadArgument, match="release must be true or false"):
        HELPER_VERBS["autobuild"](["release=maybe"], ctx)


# ------------------------------------------------------------- real tiny projects


def test_autobuild_makefile_project(ctx: Context, work: Path, run: Runner) -> None:
    _write(
        work / "proj",
        {
            "hello.c": HELLO_C % "make",
            "Makefile": "hello: hello.c\n\t$(CC) -O2 -o $@ $<\n",
        },
    )
    plan = HELPER_VERBS["autobuild"](["dir=proj", "jobs=2"], ctx)
    assert plan.argvs == [["make", "-j2"]]
    ran = run(plan)
    assert ran.result.code == 0, ran.err
    assert ran.out[0] == f"autobuild: make (Makefile) in {work / 'proj'}"
    assert _binary_output(work / "proj" / "hello") == "hello from make"


def test_make_failure_is_the_plans_exit_code(ctx: Context, work: Path, run: Runner) -> None:
    (work / "Makefile").write_text("all:\n\texit 3\n")
    ran = run(HELPER_VERBS["make"]([], ctx))
    assert ran.result.code == 2  # make's own code for a failed recipe


def test_autobuild_cmake_project(ctx: Context, work: Path, run: Runner) -> None:
    _write(
        work,
        {
            "hello.c": HELLO_C % "cmake",
            "CMakeLists.txt": "cmake_minimum_required(VERSION 3.13)\n"
            "project(hello C)\nadd_executable(hello hello.c)\n",
            "Makefile": "all:\n\tfalse\n",  # cmake wins over a Makefile
        },
    )
    plan = autobuild_plan(jobs=2, release=True, ctx=ctx)
    assert ["cmake", "--build", "build", "--parallel", "2"] == plan.argvs[1][:5]
    ran = run(plan)
    assert ran.result.code == 0, ran.err
    assert _binary_output(work / "build" / "hello") == "hello from cmake"


def test_autobuild_cargo_project_offline(ctx: Context, work: Path, run: Runner) -> None:
    _write(
        work,
        {
            "Cargo.toml": '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n',
            "src/main.rs": 'fn main() { println!("hello from cargo"); }\n',
            "Makefile": "all:\n\tfalse\n",  # cargo wins over a Makefile
        },
    )
    plan = autobuild_plan(jobs=2, release=True, ctx=ctx)
    assert plan.argvs == [["cargo", "--offline", "build", "--release", "-j", "2"]]
    ran = run(plan)
    assert ran.result.code == 0, ran.err
    assert _binary_output(work / "target" / "release" / "hello") == "hello from cargo"


@needs_tool("meson")
def test_autobuild_meson_project(ctx: Context, work: Path, run: Runner) -> None:
    _write(
        work,
        {
            "hello.c": HELLO_C % "meson",
            "meson.build": "project('hello', 'c')\nexecutable('hello', 'hello.c')\n",
        },
    )
    plan = autobuild_plan(jobs=2, ctx=ctx)
    assert plan.argvs == [
        ["meson", "setup", "builddir", ".", "--buildtype=debug"],
        ["meson", "compile", "-C", "builddir", "-j", "2"],
    ]
    ran = run(plan)
    assert ran.result.code == 0, ran.err
    assert _binary_output(work / "builddir" / "hello") == "hello from meson"
    # Configured once: a second autobuild only compiles.
    assert autobuild_plan(jobs=2, ctx=ctx).argvs == [
        ["meson", "compile", "-C", "builddir", "-j", "2"]
    ]
