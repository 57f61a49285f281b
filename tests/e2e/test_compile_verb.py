"""The ``compile`` verb: tasks call pf's engine (cached, sandboxed) instead of compilers."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from tests.e2e.conftest import Project

ADD_C = "int add(int a, int b) { return a + b; }\nint twice(int x) { return add(x, x); }\n"
SUM_WAT = (
    '(module (func (export "sum") (param i32 i32) (result i32)\n'
    "  local.get 0 local.get 1 i32.add))\n"
)


def _call(wasm: Path, name: str, *args: int) -> int:
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module.from_file(engine, str(wasm))
    instance = wasmtime.Instance(store, module, [])
    result = instance.exports(store)[name](store, *args)
    assert isinstance(result, int)
    return result


def test_compile_to_wasm_then_run_it_and_hit_the_cache(project: Project) -> None:
    project.write("src/math.c", ADD_C)
    project.write("src/sum.wat", SUM_WAT)
    project.pfyfile(
        """
        task wasm opt_level="2" out="web/wasm"
          compile src/*.c src/*.wat target=wasm out=$out opt_level=$opt_level
        end
        """
    )
    done = project.run("wasm")
    assert done.returncode == 0, done.stderr
    assert "$ compile src/*.c src/*.wat target=wasm out=web/wasm opt_level=2" in done.stderr
    assert "c -> wasm (" in done.stdout and "wat -> wasm (" in done.stdout
    assert "web/wasm/math.wasm" in done.stdout
    assert _call(project.root / "web" / "wasm" / "math.wasm", "twice", 21) == 42
    assert _call(project.root / "web" / "wasm" / "sum.wasm", "sum", 2, 40) == 42
    again = project.run("wasm", "out=web/again")
    assert again.returncode == 0, again.stderr
    assert "c -> wasm (cache hit)" in again.stdout
    assert (project.root / "web" / "again" / "math.wasm").is_file()


def test_compile_errors_show_the_compiler_diagnostics(project: Project) -> None:
    project.write("src/bad.c", "int f(void) { return missing; }\n")
    project.pfyfile("task bad\n  compile src/bad.c target=wasm out=out\nend\n")
    done = project.run("bad")
    assert done.returncode == 1
    assert "bad.c:1:22: error:" in done.stderr
    assert "note: in task `bad`" in done.stderr and "--> Pfyfile.pf:2:3" in done.stderr


def test_compile_refuses_bad_options_and_empty_globs(project: Project) -> None:
    project.write("src/a.c", ADD_C)
    project.pfyfile(
        """
        task opt
          compile src/a.c opt_level=9
        end
        task none
          compile src/*.rs
        end
        """
    )
    done = project.run("opt")
    assert done.returncode == 2
    assert "Invalid option 'opt_level'" in done.stderr
    done = project.run("none")
    assert done.returncode == 2
    assert "compile: no file matches `src/*.rs`" in done.stderr


@pytest.mark.parametrize("jobs", ["", " jobs=2"])
def test_two_languages_writing_one_output_are_refused_before_compiling(
    project: Project, jobs: str
) -> None:
    project.write("src/add.c", ADD_C)
    project.write("src/add.wat", SUM_WAT)
    project.pfyfile(f"task cw\n  compile src/*.c src/*.wat target=wasm out=out/wasm{jobs}\nend\n")
    done = project.run("cw")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert "error: compile: src/add.c and src/add.wat would both write out/wasm/add.wasm" in lines
    assert (
        "hint: give them different names, or put them on separate compile lines "
        "with their own out=" in lines
    )
    assert " --> Pfyfile.pf:2:3" in lines
    assert done.stdout == ""
    assert not (project.root / "out").exists()


def test_separate_compile_lines_keep_both_outputs(project: Project) -> None:
    project.write("src/add.c", ADD_C)
    project.write("src/add.wat", SUM_WAT)
    project.pfyfile(
        """
        task cw
          compile src/add.c out=out/c
          compile src/add.wat out=out/wat
        end
        """
    )
    done = project.run("cw")
    assert done.returncode == 0, done.stderr
    assert _call(project.root / "out" / "c" / "add.wasm", "twice", 21) == 42
    assert _call(project.root / "out" / "wat" / "add.wasm", "sum", 2, 40) == 42


def test_a_source_matched_twice_is_compiled_once(project: Project) -> None:
    # math.c leads the C compile (and names math.wasm); more.c is linked into it, so
    # more.wat's more.wasm is no collision.
    project.write("src/math.c", ADD_C)
    project.write("src/more.c", "int thrice(int x) { return 3 * x; }\n")
    project.write("src/more.wat", SUM_WAT)
    project.pfyfile("task dup\n  compile src/*.c src/math.c src/*.wat out=out\nend\n")
    done = project.run("dup")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("c -> wasm (") == 1
    assert sorted(p.name for p in (project.root / "out").iterdir()) == ["math.wasm", "more.wasm"]
    assert _call(project.root / "out" / "math.wasm", "thrice", 14) == 42
    assert _call(project.root / "out" / "more.wasm", "sum", 2, 40) == 42
