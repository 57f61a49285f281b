"""CDriver with the real clang 14 / wasm-ld / wasm2js / opt: compile, then run the output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import wasmtime

from pf.config import Settings
from pf.errors import CompileFailed, InvalidOption, RequestError
from pf.toolchains import CompileRequest, Options, SourceFile
from pf.toolchains.c import CDriver
from tests.toolchains.support import compile_files, function_exports, instantiate, outputs

DEMO = Path(__file__).parents[2] / "demos" / "polyglot" / "c" / "math.c"
CASES = Path(__file__).parent / "cases" / "c"

HELLO = b"""#include <stdio.h>
int add(int a, int b) { return a + b; }
int main(void) { printf("hello from C, add(2,3)=%d\\n", add(2, 3)); return 0; }
"""
LIB = b"""static int twice(int x) { return 2 * x; }
int add(int a, int b) { return a + b; }
int quad(int x) { return twice(twice(x)); }
__attribute__((weak)) int weak_one(void) { return 1; }
"""


def build(
    settings: Settings, target: str, sources: dict[str, bytes], **options: object
) -> dict[str, Path]:
    return outputs(compile_files(settings, "c", target, sources, **options))


def test_demo_wasm_add_and_trap(settings: Settings) -> None:
    out = build(settings, "wasm", {"math.c": DEMO.read_bytes()})
    store, exports = instantiate(out["math.wasm"])
    assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]
    assert exports["checked_div"](store, 7, 2) == 3  # type: ignore[operator]
    with pytest.raises(wasmtime.Trap, match="unreachable"):
        exports["checked_div"](store, 7, 0)  # type: ignore[operator]


def test_default_exports_are_the_non_static_functions(settings: Settings) -> None:
    out = build(settings, "wasm", {"lib.c": LIB})
    assert function_exports(out["lib.wasm"]) == {"add", "quad", "weak_one", "_initialize"}
    store, exports = instantiate(out["lib.wasm"])
    assert exports["quad"](store, 3) == 12  # type: ignore[operator]


def test_exports_option_narrows(settings: Settings) -> None:
    out = build(settings, "wasm", {"lib.c": LIB}, exports="add")
    assert function_exports(out["lib.wasm"]) == {"add", "_initialize"}


def test_exports_naming_a_missing_symbol_fails_clearly(settings: Settings) -> None:
    with pytest.raises(CompileFailed) as caught:
        build(settings, "wasm", {"lib.c": LIB}, exports="add,nope")
    assert "'nope'" in caught.value.message
    assert "add, quad, weak_one" in caught.value.message


def test_static_function_cannot_be_exported(settings: Settings) -> None:
    with pytest.raises(CompileFailed, match="'twice'"):
        build(settings, "wasm", {"lib.c": LIB}, exports="twice")


def test_hello_with_main_runs_under_wasi(settings: Settings, tmp_path: Path) -> None:
    out = build(settings, "wasm", {"hello.c": HELLO})
    names = function_exports(out["hello.wasm"])
    assert "_start" in names and "add" in names and "main" not in names
    stdout = tmp_path / "stdout.txt"
    store, exports = instantiate(out["hello.wasm"], stdout)
    # wasi-libc's _start returns normally when main returns 0 (proc_exit only otherwise).
    exports["_start"](store)  # type: ignore[operator]
    assert stdout.read_text() == "hello from C, add(2,3)=5\n"


def test_several_files_with_a_header(settings: Settings) -> None:
    sources = {
        "main.c": b'#include "inc/ops.h"\nint square(int x) { return mul(x, x); }\n',
        "inc/ops.h": b"int mul(int a, int b);\n",
        "src/ops.c": b'#include "../inc/ops.h"\nint mul(int a, int b) { return a * b; }\n',
    }
    out = build(settings, "wasm", sources, opt_level="s")
    store, exports = instantiate(out["main.wasm"])
    assert exports["square"](store, 9) == 81  # type: ignore[operator]
    ir = build(settings, "llvm", sources)["main.ll"]
    subprocess.run(["llvm-as-14", str(ir), "-o", os.devnull], check=True)
    assert "define hidden i32 @square" in ir.read_text()


def test_llvm_ir_verifies(settings: Settings) -> None:
    ir = build(settings, "llvm", {"math.c": DEMO.read_bytes()})["math.ll"]
    subprocess.run(["opt-14", "-verify", "-S", str(ir), "-o", os.devnull], check=True)
    text = ir.read_text()
    assert 'target triple = "wasm32-unknown-wasi"' in text
    assert "@add(" in text


def test_llvm_passes_are_applied(settings: Settings) -> None:
    src = {"math.c": DEMO.read_bytes()}
    plain = build(settings, "llvm", src, opt_level=0)["math.ll"].read_text()
    passed = build(settings, "llvm", src, opt_level=0, passes="mem2reg")["math.ll"]
    subprocess.run(["llvm-as-14", str(passed), "-o", os.devnull], check=True)
    assert "alloca" in plain and "optnone" in plain
    assert "alloca" not in passed.read_text()


def test_asm_runs_without_webassembly(settings: Settings, tmp_path: Path) -> None:
    js = build(settings, "asm", {"math.c": DEMO.read_bytes()})["math.mjs"]
    module = tmp_path / "math.mjs"
    module.write_bytes(js.read_bytes())
    script = (
        f"import * as m from {json.dumps(str(module))};"
        "console.log(typeof WebAssembly, m.add(2, 3));"
        "try { m.checked_div(7, 0); console.log('no trap'); } catch (e) { console.log('trap'); }"
    )
    done = subprocess.run(
        ["node", "--jitless", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["undefined", "5", "trap"]


def test_syntax_error_points_at_the_users_file(settings: Settings) -> None:
    bad = b"int ok(void) { return 1; }\nint f(void) {\n  return 1 +;\n}\n"
    with pytest.raises(CompileFailed) as caught:
        build(settings, "wasm", {"sub/bad.c": bad})
    errors = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert [(d.file, d.line, d.col) for d in errors] == [("sub/bad.c", 3, 13)]
    assert errors[0].message == "expected expression"


@pytest.mark.parametrize("target", ["wasm", "asm"])
def test_parallel_is_refused_for_wasm(settings: Settings, target: str) -> None:
    with pytest.raises(InvalidOption, match="no threads"):
        build(settings, target, {"math.c": DEMO.read_bytes()}, parallel=True)


def test_parallel_llvm_emits_openmp_ir(settings: Settings) -> None:
    src = b"void scale(float *x, int n) {\n#pragma omp parallel for\n"
    src += b"  for (int i = 0; i < n; i++) x[i] *= 2.0f;\n}\n"
    ir = build(settings, "llvm", {"omp.c": src}, parallel=True)["omp.ll"]
    subprocess.run(["llvm-as-14", str(ir), "-o", os.devnull], check=True)
    assert "__kmpc_fork_call" in ir.read_text()


def test_passes_refused_outside_llvm() -> None:
    request = CompileRequest(
        "c", "wasm", (SourceFile("a.c", b""),), Options.parse({"passes": "mem2reg"})
    )
    with pytest.raises(InvalidOption, match="target 'llvm' only"):
        CDriver().plan(request)


def test_request_without_c_file_is_refused() -> None:
    with pytest.raises(RequestError, match=r"\.c source"):
        CDriver().plan(CompileRequest("c", "wasm", (SourceFile("a.h", b""),)))


def test_plan_argv_is_relative_and_compiles_through_ccache() -> None:
    plan = CDriver().plan(
        CompileRequest("c", "wasm", (SourceFile("a.c", b""), SourceFile("b/a.c", b"")))
    )
    runs = [s for s in plan.steps if hasattr(s, "argv")]
    compiles = [s for s in runs if s.label == "compile"]
    assert all(s.ccache for s in compiles)
    assert [s.argv[-3:] for s in compiles] == [
        ("-o", "obj/0_a.o", "a.c"),
        ("-o", "obj/1_a.o", "b/a.c"),
    ]
    link = runs[-1].argv
    assert "@obj/exports.rsp" in link and link[-5:] == (
        "-o",
        "out/a.wasm",
        "--",
        "obj/0_a.o",
        "obj/1_a.o",
    )
    assert not any(arg.startswith("/") for s in runs for arg in s.argv)


@pytest.mark.parametrize("case", sorted(p.stem for p in CASES.glob("*.stderr")))
def test_golden_diagnostics(case: str) -> None:
    stderr = (CASES / f"{case}.stderr").read_text()
    expected = json.loads((CASES / f"{case}.json").read_text())
    assert [d.to_dict() for d in CDriver().diagnostics(stderr)] == expected
