"""The ``compile`` verb: tasks call pf's engine (cached, sandboxed) instead of compilers."""

from __future__ import annotations

from pathlib import Path

import wasmtime

from tests.e2e.conftest import Project

ADD_C = "int add(int a, int b) { return a + b; }\nint twice(int x) { return add(x, x); }\n"


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
    project.write(
        "src/sum.wat",
        '(module (func (export "sum") (param i32 i32) (result i32)\n'
        "  local.get 0 local.get 1 i32.add))\n",
    )
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
