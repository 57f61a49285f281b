"""Plans name the make-style dependency files their compile steps write, and those files
list what a source pulls in from outside the request (here: an absolutely included file)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pf.config import Settings
from pf.toolchains import CompileRequest, SourceFile, get_driver
from tests.toolchains.support import run_plan


def c_sources(header: Path) -> dict[str, bytes]:
    header.write_text("static inline int twice(int x) { return 2 * x; }\n")
    include = f'#include "{header}"\n'.encode()
    return {
        "a.c": include + b"int quad(int x) { return twice(twice(x)); }\n",
        "b.c": include + b"int add(int a, int b) { return a + b; }\n",
    }


def rust_sources(data: Path) -> dict[str, bytes]:
    data.write_text("hello")
    body = f'#[no_mangle]\npub extern "C" fn len() -> usize {{ include_str!("{data}").len() }}\n'
    return {"lib.rs": body.encode()}


@pytest.mark.parametrize(
    ("language", "target", "count"),
    [("c", "wasm", 2), ("c", "asm", 2), ("c", "llvm", 2), ("rust", "wasm", 1), ("rust", "llvm", 1)],
)
def test_depfiles_name_an_absolutely_included_file(
    settings: Settings, tmp_path: Path, language: str, target: str, count: int
) -> None:
    included = tmp_path / ("shared.h" if language == "c" else "data.txt")
    files = c_sources(included) if language == "c" else rust_sources(included)
    sources = tuple(SourceFile(name, data) for name, data in files.items())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    plan = run_plan(CompileRequest(language, target, sources), settings, scratch)
    assert len(plan.depfiles) == count
    for depfile in plan.depfiles:
        assert str(included) in (scratch / depfile).read_text()


def test_a_single_c_file_to_llvm_has_one_depfile(settings: Settings, tmp_path: Path) -> None:
    header = tmp_path / "shared.h"
    source = c_sources(header)["a.c"]
    plan = run_plan(CompileRequest("c", "llvm", (SourceFile("a.c", source),)), settings, tmp_path)
    (depfile,) = plan.depfiles
    assert str(header) in (tmp_path / depfile).read_text()


def test_c_depfile_flags_do_not_change_the_object(settings: Settings, tmp_path: Path) -> None:
    source = (SourceFile("b.c", c_sources(tmp_path / "shared.h")["b.c"]),)
    plan = run_plan(CompileRequest("c", "wasm", source), settings, tmp_path)
    compile_argv = list(next(s for s in plan.steps if s.label == "compile").describe())
    at = compile_argv.index("-MD")
    del compile_argv[at : at + 3]
    again = tmp_path / "again"
    again.mkdir()
    (again / "b.c").write_bytes(source[0].content)
    (again / "obj").mkdir()
    subprocess.run(["/usr/bin/clang-14", *compile_argv[1:]], cwd=again, check=True)
    obj = compile_argv[-1]
    assert (again / obj).read_bytes() == (tmp_path / obj).read_bytes()


@pytest.mark.parametrize("target", ["wasm", "llvm", "asm"])
def test_fortran_and_wat_assembly_have_none(target: str) -> None:
    # flang-19 has no -MD/-MF ("unknown argument"); wat2wasm reads one file.
    for language, name in [("fortran", "a.f90"), ("wat", "a.wat")]:
        request = CompileRequest(language, target, (SourceFile(name, b""),))
        plan = get_driver(language).plan(request)
        expected = ("obj/a.d",) if (language, target) == ("wat", "llvm") else ()
        assert plan.depfiles == expected
