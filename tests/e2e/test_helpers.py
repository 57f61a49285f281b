"""Build helpers on real tiny projects: ``autobuild`` detection (Makefile, CMake, Cargo offline,
meson), ``make jobs=``, ``build_detect``; each built program is then run."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Project
from tests.tools import needs_tool

HELLO_C = '#include <stdio.h>\nint main(void) { puts("hello from %s"); return 0; }\n'


def _autobuild(project: Project, subdir: str) -> None:
    project.pfyfile(
        f"""
        task autobuild dir="{subdir}" jobs="2"
          autobuild dir=$dir jobs=$jobs
        end
        task detect
          build_detect {subdir}
        end
        """
    )


@needs_tool("make", "cc")
def test_autobuild_a_makefile_project(project: Project) -> None:
    project.write("app/hello.c", HELLO_C % "make")
    project.write("app/Makefile", "hello: hello.c\n\tcc -o hello hello.c\n")
    _autobuild(project, "app")
    done = project.run("autobuild", "jobs=3")
    assert done.returncode == 0, done.stderr
    assert "autobuild: make (Makefile)" in done.stdout
    assert "$ make -j3" in done.stderr
    assert (project.root / "app" / "hello").is_file()
    assert project.run("detect").stdout.startswith("make (Makefile)")


@needs_tool("cmake", "cc")
def test_autobuild_a_cmake_project(project: Project) -> None:
    project.write("app/hello.c", HELLO_C % "cmake")
    project.write(
        "app/CMakeLists.txt",
        "cmake_minimum_required(VERSION 3.10)\nproject(hello C)\nadd_executable(hello hello.c)\n",
    )
    _autobuild(project, "app")
    done = project.run("autobuild", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "autobuild: cmake (CMakeLists.txt)" in done.stdout
    built = list((project.root / "app").rglob("hello"))
    assert any(p.is_file() for p in built), built


@needs_tool("cargo")
def test_autobuild_a_cargo_project_offline(project: Project) -> None:
    project.write(
        "app/Cargo.toml",
        '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n',
    )
    project.write("app/src/main.rs", 'fn main() { println!("hello from cargo"); }\n')
    _autobuild(project, "app")
    done = project.run("autobuild", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "autobuild: cargo (Cargo.toml)" in done.stdout
    assert "--offline" in done.stderr
    assert (project.root / "app" / "target" / "debug" / "hello").is_file()


@needs_tool("meson", "ninja", "cc")
def test_autobuild_a_meson_project(project: Project) -> None:
    project.write("app/hello.c", HELLO_C % "meson")
    project.write("app/meson.build", "project('hello', 'c')\nexecutable('hello', 'hello.c')\n")
    _autobuild(project, "app")
    done = project.run("autobuild", timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "autobuild: meson (meson.build)" in done.stdout
    assert any(p.is_file() for p in (project.root / "app").rglob("hello"))


@needs_tool("make", "cc")
def test_make_helper_with_variables_and_targets(project: Project) -> None:
    project.write("Makefile", 'greet:\n\t@echo "greet $(WHO)"\nother:\n\t@echo other\n')
    project.pfyfile(
        """
        task m who="pf"
          make greet other jobs=2 WHO=$who
        end
        """
    )
    done = project.run("m", "who=you")
    assert done.returncode == 0, done.stderr
    # make -j2 runs both targets at once: their lines may come in either order.
    assert sorted(done.stdout.splitlines()) == ["greet you", "other"]
    assert "$ make -j2 WHO=you greet other" in done.stderr


# autoconf's conventions in miniature: unknown `--options` are an error, upper-case
# `VAR=value` arguments set variables; the Makefile it writes uses them.
CONFIGURE = r"""#!/bin/sh
prefix=/usr/local docs=no static=yes CC=cc CFLAGS=
for arg in "$@"; do
  case $arg in
    --prefix=*) prefix=${arg#--prefix=} ;;
    --enable-docs) docs=yes ;;
    --disable-docs) docs=no ;;
    --enable-static) static=yes ;;
    --disable-static) static=no ;;
    -*) echo "configure: error: unrecognized option: \`$arg'" >&2; exit 1 ;;
    [A-Z_]*=*) eval "${arg%%=*}=\${arg#*=}" ;;
    *) echo "configure: error: invalid argument: \`$arg'" >&2; exit 1 ;;
  esac
done
printf '%s\n' "$@" > configure.args
echo "prefix=$prefix docs=$docs static=$static" > config.txt
printf 'hello: hello.c\n\t%s %s -o hello hello.c\n' "$CC" "$CFLAGS" > Makefile
"""


@needs_tool("make", "gcc")
def test_configure_passes_variables_as_arguments_then_make_builds(project: Project) -> None:
    project.write("configure", CONFIGURE, mode=0o755)
    project.write("hello.c", HELLO_C % "configure")
    project.pfyfile(
        """
        task build cc="gcc"
          configure prefix=/opt/x docs=true static=false CC=$cc CFLAGS="-O2 -g" jobs=2
          shell ./hello
        end
        """
    )
    done = project.run("build")
    assert done.returncode == 0, done.stderr
    assert (project.root / "configure.args").read_text().splitlines() == [
        *("--prefix=/opt/x", "--enable-docs", "--disable-static", "CC=gcc", "CFLAGS=-O2 -g")
    ]
    assert (project.root / "config.txt").read_text() == "prefix=/opt/x docs=yes static=no\n"
    assert "$ make -j2" in done.stderr
    assert done.stdout.splitlines() == ["gcc -O2 -g -o hello hello.c", "hello from configure"]


def test_autobuild_without_a_build_system_says_what_it_looked_for(project: Project) -> None:
    project.write("empty/readme.txt", "nothing to build\n")
    _autobuild(project, "empty")
    done = project.run("autobuild")
    assert done.returncode == 1
    assert "autobuild: no build system found in" in done.stderr
    assert "hint: looked for Cargo.toml" in done.stderr


@pytest.mark.parametrize("jobs", ["many", "0"])
def test_a_bad_jobs_value_is_a_usage_error(project: Project, jobs: str) -> None:
    project.write("Makefile", "all:\n\t@true\n")
    project.pfyfile(f'task m\n  make jobs="{jobs}"\nend\n')
    done = project.run("m")
    assert done.returncode == 2
    assert "jobs must be a positive integer" in done.stderr
