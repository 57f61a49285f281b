"""Build helpers (``make``, ``cmake``, ``meson``/``ninja``, ``cargo``, ``go_build``,
``configure``, ``just``) plus ``build_detect`` and ``autobuild``, as plans.

Each helper is a typed function returning a :class:`~pf.tasks.tools.Plan`; ``VERBS`` maps
the Pfyfile verb names to adapters that take the verb's (already interpolated) words.
``jobs=N`` becomes each tool's own parallelism flag. Cargo always runs ``--offline``:
this project's machines cannot reach crates.io, and a build that silently tries to is
slower and fails worse. ``autobuild`` picks the first build file of ``DETECTION_ORDER``
(docs/pfyfile.md's order, which puts specific systems before the generic Makefile that they
often generate). Imports only ``pf.tasks.tools``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pf.tasks.tools import (
    Args,
    BadArgument,
    Context,
    NoBuildSystem,
    Plan,
    Run,
    Say,
    Tool,
    VerbPlanner,
    find_tool,
    parse_bool,
    parse_jobs,
    split_args,
)

MAKE = Tool.apt("make")
CMAKE = Tool.apt("cmake")
MESON = Tool.apt("meson")
NINJA = Tool.apt("ninja", "ninja-build")
CARGO = Tool(
    "cargo",
    ("cargo", "$HOME/.cargo/bin/cargo"),
    "apt-get install -y cargo",
)
GO = Tool.apt("go", "golang-go")
# just is not packaged in Debian 12; PyPI's rust-just wheel ships the binary.
JUST = Tool("just", ("just",), "python3 -m pip install rust-just")
NPM = Tool.apt("npm")
PYTHON = Tool.apt("python3", None, "python3", "python")
MAVEN = Tool.apt("mvn", "maven")
GRADLE = Tool.apt("gradle")
AUTORECONF = Tool("autoreconf", ("autoreconf",), "apt-get install -y autoconf automake libtool")


def _jobs_flag(jobs: int | None) -> list[str]:
    return [f"-j{jobs}"] if jobs else []


# ------------------------------------------------------------------------- helpers


def make_plan(
    targets: Sequence[str] = (),
    *,
    jobs: int | None = None,
    parallel: bool = False,
    variables: Mapping[str, str] | None = None,
    ctx: Context,
) -> Plan:
    """``make [-jN] [VAR=v…] [targets…]`` in ``ctx.cwd``.

    ``parallel`` without ``jobs`` is make's unbounded ``-j`` (the original ``parallel=true``).
    """
    make = find_tool(MAKE, ctx, "make")
    assigns = [f"{k}={v}" for k, v in (variables or {}).items()]
    jobs_flag = _jobs_flag(jobs) or (["-j"] if parallel else [])
    return Plan((ctx.command([make, *jobs_flag, *assigns, *targets]),))


def cmake_plan(
    source: str = ".",
    *,
    build_dir: str = "build",
    build_type: str | None = None,
    target: str | None = None,
    jobs: int | None = None,
    generator: str | None = None,
    defines: Mapping[str, str] | None = None,
    ctx: Context,
) -> Plan:
    """Configure (``cmake -S -B``, ``K=V`` → ``-DK=V``) then ``cmake --build``."""
    cmake = find_tool(CMAKE, ctx, "cmake")
    configure = [cmake, "-S", source, "-B", build_dir]
    if generator:
        configure += ["-G", generator]
    if build_type:
        configure.append(f"-DCMAKE_BUILD_TYPE={build_type}")
    configure += [f"-D{k}={v}" for k, v in (defines or {}).items()]
    build = [cmake, "--build", build_dir]
    if jobs:
        build += ["--parallel", str(jobs)]
    if target:
        build += ["--target", target]
    if build_type:
        # Multi-config generators (Ninja Multi-Config) pick the config at build time.
        build += ["--config", build_type]
    return Plan((ctx.command(configure), ctx.command(build)))


def meson_plan(
    source: str = ".",
    *,
    build_dir: str = "builddir",
    build_type: str | None = None,
    target: str | None = None,
    jobs: int | None = None,
    options: Mapping[str, str] | None = None,
    ctx: Context,
) -> Plan:
    """``meson setup`` (only when ``build_dir`` is not configured yet) then ``meson compile``."""
    meson = find_tool(MESON, ctx, "meson")
    find_tool(NINJA, ctx, "meson")  # meson's backend: fail here, with the install line
    steps: list[Run] = []
    if not (ctx.resolve(build_dir) / "build.ninja").is_file():
        setup = [meson, "setup", build_dir, source]
        if build_type:
            setup.append(f"--buildtype={build_type}")
        setup += [f"-D{k}={v}" for k, v in (options or {}).items()]
        steps.append(ctx.command(setup))
    compile_ = [meson, "compile", "-C", build_dir]
    if jobs:
        compile_ += ["-j", str(jobs)]
    if target:
        compile_.append(target)
    steps.append(ctx.command(compile_))
    return Plan(tuple(steps))


def ninja_plan(
    targets: Sequence[str] = (),
    *,
    directory: str = ".",
    jobs: int | None = None,
    ctx: Context,
) -> Plan:
    """``ninja -C dir [-jN] [targets]``; a meson project without build.ninja gets meson.

    The original pf ran meson for ``ninja`` lines, so Pfyfiles that relied on that keep
    working, while a directory with ``build.ninja`` gets plain ninja.
    """
    where = ctx.resolve(directory)
    if not (where / "build.ninja").is_file() and (where / "meson.build").is_file():
        target = targets[0] if targets else None
        return meson_plan(".", jobs=jobs, target=target, ctx=ctx.at(directory))
    ninja = find_tool(NINJA, ctx, "ninja")
    return Plan((ctx.command([ninja, "-C", directory, *_jobs_flag(jobs), *targets]),))


def cargo_plan(
    subcommand: str,
    args: Sequence[str] = (),
    *,
    release: bool = False,
    features: str | None = None,
    target: str | None = None,
    jobs: int | None = None,
    manifest_path: str | None = None,
    flags: Mapping[str, str] | None = None,
    ctx: Context,
) -> Plan:
    """``cargo --offline SUB [--release] [--features F] [--target T] [-j N] …``.

    ``flags`` are other ``key=value`` options: ``true`` → ``--key``, else ``--key value``.
    """
    cargo = find_tool(CARGO, ctx, "cargo")
    argv = [cargo, "--offline", subcommand]
    if release:
        argv.append("--release")
    if features:
        argv += ["--features", features]
    if target:
        argv += ["--target", target]
    if jobs:
        argv += ["-j", str(jobs)]
    if manifest_path:
        argv += ["--manifest-path", manifest_path]
    for key, value in (flags or {}).items():
        argv += [f"--{key}"] if value.lower() == "true" else [f"--{key}", value]
    argv += args
    return Plan((ctx.command(argv),))


def go_build_plan(
    packages: Sequence[str] = (),
    *,
    output: str | None = None,
    tags: str | None = None,
    race: bool = False,
    ldflags: str | None = None,
    jobs: int | None = None,
    subcommand: str = "build",
    ctx: Context,
) -> Plan:
    """``go build [-p N] [-o out] [-tags T] [-race] [-ldflags L] [packages]``."""
    go = find_tool(GO, ctx, "go_build")
    argv = [go, subcommand]
    if jobs:
        argv += ["-p", str(jobs)]
    if output:
        argv += ["-o", output]
    if tags:
        argv += ["-tags", tags]
    if race:
        argv.append("-race")
    if ldflags:
        argv += ["-ldflags", ldflags]
    return Plan((ctx.command([*argv, *packages]),))


# autoconf's convention: upper-case names (CC, CFLAGS, PKG_CONFIG_PATH) are variables
# that a configure script takes as plain `VAR=value` arguments; options are lower-case.
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")


def _is_variable(key: str) -> bool:
    # isupper(): at least one letter, so `_` or `_1` stay options.
    return _VARIABLE.fullmatch(key) is not None and key.isupper()


def configure_plan(
    script: str = "./configure",
    *,
    prefix: str | None = None,
    features: Mapping[str, str] | None = None,
    variables: Mapping[str, str] | None = None,
    jobs: int | None = None,
    make: bool = True,
    ctx: Context,
) -> Plan:
    """``./configure [--prefix=P] [--enable-f|--disable-f|--k=v]… [VAR=v…]`` then ``make [-jN]``.

    ``variables`` (``CC``, ``CFLAGS``, ...) go after the options as plain ``VAR=value``
    arguments, which is how autoconf's scripts take them. Without a configure script but
    with ``configure.ac``, ``autoreconf -fi`` makes one.
    """
    steps: list[Run] = []
    script_path = ctx.resolve(script)
    if not script_path.exists() and (script_path.parent / "configure.ac").is_file():
        steps.append(ctx.command([find_tool(AUTORECONF, ctx, "configure"), "-fi"]))
    elif not script_path.exists():
        raise BadArgument(f"configure: no {script} (nor configure.ac) in {script_path.parent}")
    argv = [script]
    if prefix:
        argv.append(f"--prefix={prefix}")
    for key, value in (features or {}).items():
        lowered = value.lower()
        if lowered == "true":
            argv.append(f"--enable-{key}")
        elif lowered == "false":
            argv.append(f"--disable-{key}")
        else:
            argv.append(f"--{key}={value}")
    argv += [f"{key}={value}" for key, value in (variables or {}).items()]
    steps.append(ctx.command(argv))
    if make:
        steps.extend(make_plan(jobs=jobs, ctx=ctx).runs)
    return Plan(tuple(steps))


def just_plan(args: Sequence[str] = (), *, ctx: Context) -> Plan:
    """``just [NAME=VALUE…] [recipe [args…]]``, words passed through in order."""
    return Plan((ctx.command([find_tool(JUST, ctx, "just"), *args]),))


# ----------------------------------------------------------------------- detection


@dataclass(frozen=True)
class BuildSystem:
    """A build system found in a directory, and the file that gave it away."""

    name: str
    marker: str
    directory: Path


# docs/pfyfile.md's autobuild order: the first present marker wins.
DETECTION_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cargo", ("Cargo.toml",)),
    ("go", ("go.mod",)),
    ("npm", ("package.json",)),
    ("python", ("setup.py", "pyproject.toml")),
    ("maven", ("pom.xml",)),
    ("gradle", ("build.gradle", "build.gradle.kts")),
    ("cmake", ("CMakeLists.txt",)),
    ("meson", ("meson.build",)),
    ("just", ("justfile", "Justfile", ".justfile")),
    ("autotools", ("configure", "configure.ac")),
    ("make", ("Makefile", "makefile", "GNUmakefile")),
    ("ninja", ("build.ninja",)),
)


def detect_build_systems(directory: Path) -> list[BuildSystem]:
    """Every build system ``directory`` has, in autobuild's order (first = autobuild's pick)."""
    found = []
    for name, markers in DETECTION_ORDER:
        for marker in markers:
            if (directory / marker).is_file():
                found.append(BuildSystem(name, marker, directory))
                break
    return found


def detect_build_system(directory: Path) -> BuildSystem | None:
    """The build system ``autobuild`` uses for ``directory``, or None."""
    found = detect_build_systems(directory)
    return found[0] if found else None


def build_detect_plan(directory: str = ".", *, ctx: Context) -> Plan:
    """Print which build system(s) ``directory`` uses; informational, never fails."""
    where = ctx.resolve(directory)
    found = detect_build_systems(where)
    if not found:
        return Plan((Say(f"no build system detected in {where}"),))
    lines = [Say(f"{found[0].name} ({found[0].marker}) — autobuild uses this")]
    lines += [Say(f"{bs.name} ({bs.marker})") for bs in found[1:]]
    return Plan(tuple(lines))


# ----------------------------------------------------------------------- autobuild

AutoBuilder = Callable[[Context, int, bool, str | None], Plan]


def _auto_cargo(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    return cargo_plan("build", release=release, jobs=jobs, ctx=ctx)


def _auto_go(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    return go_build_plan(output=target, jobs=jobs, ctx=ctx)


def _auto_npm(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    npm = find_tool(NPM, ctx, "autobuild")
    try:
        manifest = json.loads((ctx.cwd / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BadArgument(f"autobuild: cannot read {ctx.cwd / 'package.json'}: {exc}") from exc
    scripts = manifest.get("scripts") if isinstance(manifest, dict) else None
    steps = []
    if not (ctx.cwd / "node_modules").is_dir():
        steps.append(ctx.command([npm, "install", "--no-audit", "--no-fund"]))
    if isinstance(scripts, dict) and "build" in scripts:
        steps.append(ctx.command([npm, "run", "build"]))
    return Plan(tuple(steps))


def _auto_python(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    python = find_tool(PYTHON, ctx, "autobuild")
    if (ctx.cwd / "pyproject.toml").is_file():
        return Plan((ctx.command([python, "-m", "pip", "install", "-e", "."]),))
    return Plan((ctx.command([python, "setup.py", "build"]),))


def _auto_maven(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    mvn = find_tool(MAVEN, ctx, "autobuild")
    return Plan((ctx.command([mvn, "-B", "-T", str(jobs), "compile"]),))


def _auto_gradle(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    wrapper = ctx.cwd / "gradlew"
    gradle = "./gradlew" if os.access(wrapper, os.X_OK) else find_tool(GRADLE, ctx, "autobuild")
    return Plan((ctx.command([gradle, "build", "--parallel", f"--max-workers={jobs}"]),))


def _auto_cmake(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    build_type = "Release" if release else "Debug"
    return cmake_plan(".", build_type=build_type, target=target, jobs=jobs, ctx=ctx)


def _auto_meson(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    build_type = "release" if release else "debug"
    return meson_plan(".", build_type=build_type, target=target, jobs=jobs, ctx=ctx)


def _auto_just(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    return just_plan([target] if target else [], ctx=ctx)


def _auto_autotools(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    if (ctx.cwd / "config.status").is_file():
        # Already configured: rerunning configure would throw away the user's options.
        return make_plan([target] if target else [], jobs=jobs, ctx=ctx)
    return configure_plan(jobs=jobs, ctx=ctx)


def _auto_make(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    return make_plan([target] if target else [], jobs=jobs, ctx=ctx)


def _auto_ninja(ctx: Context, jobs: int, release: bool, target: str | None) -> Plan:
    return ninja_plan([target] if target else [], jobs=jobs, ctx=ctx)


AUTOBUILDERS: Mapping[str, AutoBuilder] = {
    "cargo": _auto_cargo,
    "go": _auto_go,
    "npm": _auto_npm,
    "python": _auto_python,
    "maven": _auto_maven,
    "gradle": _auto_gradle,
    "cmake": _auto_cmake,
    "meson": _auto_meson,
    "just": _auto_just,
    "autotools": _auto_autotools,
    "make": _auto_make,
    "ninja": _auto_ninja,
}


def autobuild_plan(
    directory: str = ".",
    *,
    jobs: int | None = None,
    release: bool = False,
    target: str | None = None,
    ctx: Context,
) -> Plan:
    """Detect ``directory``'s build system (``DETECTION_ORDER``) and build it there.

    Without ``jobs`` the build runs with ``Settings.jobs`` (PF_JOBS, default: the CPU
    count), as the original autobuild always ran parallel. ``release`` picks cargo
    ``--release`` and CMake/Meson release build types (debug otherwise); ``target`` is
    the make/ninja/just/CMake/Meson target or go's ``-o`` output, as in the original.
    """
    where = ctx.at(directory)
    found = detect_build_system(where.cwd)
    if found is None:
        markers = ", ".join(m for _, ms in DETECTION_ORDER for m in ms)
        raise NoBuildSystem(
            f"autobuild: no build system found in {where.cwd}", hint=f"looked for {markers}"
        )
    announce = Say(f"autobuild: {found.name} ({found.marker}) in {where.cwd}")
    build = AUTOBUILDERS[found.name](where, jobs or where.settings.jobs, release, target)
    return Plan((announce,)) + build


# --------------------------------------------------------------------- verb table


def _jobs(verb: str, args: Args) -> int | None:
    return parse_jobs(verb, args.get("jobs"))


def _verb_make(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    jobs = _jobs("make", args)
    variables = args.extra({"jobs", "parallel"})
    parallel = parse_bool("make", "parallel", args.get("parallel"))
    return make_plan(args.positional, jobs=jobs, parallel=parallel, variables=variables, ctx=ctx)


def _verb_cmake(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    pos = args.positional
    known = {"build_dir", "build_type", "target", "jobs", "generator"}
    return cmake_plan(
        pos[0] if pos else ".",
        build_dir=args.get("build_dir") or (pos[1] if len(pos) > 1 else "build"),
        build_type=args.get("build_type"),
        target=args.get("target"),
        jobs=_jobs("cmake", args),
        generator=args.get("generator"),
        defines=args.extra(known),
        ctx=ctx,
    )


def _verb_meson(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    pos = args.positional
    known = {"build_dir", "build_type", "buildtype", "target", "jobs"}
    return meson_plan(
        pos[0] if pos else ".",
        build_dir=args.get("build_dir") or (pos[1] if len(pos) > 1 else "builddir"),
        build_type=args.get("build_type") or args.get("buildtype"),
        target=args.get("target"),
        jobs=_jobs("meson", args),
        options=args.extra(known),
        ctx=ctx,
    )


def _verb_ninja(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    directory = args.get("dir") or args.get("build_dir") or "."
    return ninja_plan(args.positional, directory=directory, jobs=_jobs("ninja", args), ctx=ctx)


def _verb_cargo(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    if not args.positional:
        raise BadArgument("cargo: needs a subcommand, as in `cargo build release=true`")
    known = {"release", "features", "target", "jobs", "manifest_path"}
    return cargo_plan(
        args.positional[0],
        args.positional[1:],
        release=parse_bool("cargo", "release", args.get("release")),
        features=args.get("features"),
        target=args.get("target"),
        jobs=_jobs("cargo", args),
        manifest_path=args.get("manifest_path"),
        flags=args.extra(known),
        ctx=ctx,
    )


def _verb_go_build(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    return go_build_plan(
        args.positional,
        output=args.get("output"),
        tags=args.get("tags"),
        race=parse_bool("go_build", "race", args.get("race")),
        ldflags=args.get("ldflags"),
        jobs=_jobs("go_build", args),
        subcommand=args.get("subcommand") or "build",
        ctx=ctx,
    )


def _verb_configure(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    extra = args.extra({"prefix", "jobs", "make"})
    return configure_plan(
        args.positional[0] if args.positional else "./configure",
        prefix=args.get("prefix"),
        features={k: v for k, v in extra.items() if not _is_variable(k)},
        variables={k: v for k, v in extra.items() if _is_variable(k)},
        jobs=_jobs("configure", args),
        make=parse_bool("configure", "make", args.get("make"), default=True),
        ctx=ctx,
    )


def _verb_just(words: Sequence[str], ctx: Context) -> Plan:
    return just_plan(words, ctx=ctx)


def _verb_build_detect(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    directory = args.get("dir") or (args.positional[0] if args.positional else ".")
    return build_detect_plan(directory, ctx=ctx)


def _verb_autobuild(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    return autobuild_plan(
        args.get("dir") or (args.positional[0] if args.positional else "."),
        jobs=_jobs("autobuild", args),
        release=parse_bool("autobuild", "release", args.get("release")),
        target=args.get("target"),
        ctx=ctx,
    )


# Pfyfile verb → planner. Aliases are the original pf's spellings.
VERBS: Mapping[str, VerbPlanner] = {
    "make": _verb_make,
    "makefile": _verb_make,
    "cmake": _verb_cmake,
    "meson": _verb_meson,
    "ninja": _verb_ninja,
    "cargo": _verb_cargo,
    "go_build": _verb_go_build,
    "gobuild": _verb_go_build,
    "configure": _verb_configure,
    "just": _verb_just,
    "justfile": _verb_just,
    "build_detect": _verb_build_detect,
    "detect_build": _verb_build_detect,
    "autobuild": _verb_autobuild,
    "auto_build": _verb_autobuild,
}
