"""wasmobj against real clang 14 and clang 19 objects and a real wat2wasm module."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pf.errors import CompileFailed
from pf.toolchains import wasmobj

LIB = """#include <stddef.h>
static int helper(int x) { return x * 2; }
int add(int a, int b) { return helper(a) + b; }
__attribute__((weak)) double weak_fn(double x) { return x; }
__attribute__((visibility("default"))) int shown(void) { return 1; }
extern int imported(int);
int calls_import(int x) { return imported(x); }
int table[4] = {1, 2, 3, 4};
int *data_ptr(void) { return table; }
static int unused_static(void) { return 0; }
"""
MAIN = "int main(int argc, char **argv) { return argc; }\n"


def compile_object(tmp: Path, clang: str, name: str, text: str, target: str) -> Path:
    src = tmp / f"{name}.c"
    src.write_text(text)
    obj = tmp / f"{name}.o"
    subprocess.run([clang, f"--target={target}", "-O1", "-c", str(src), "-o", str(obj)], check=True)
    return obj


@pytest.mark.parametrize(
    ("clang", "target"),
    [("/usr/bin/clang-14", "wasm32-wasi"), ("/usr/bin/clang-19", "wasm32-unknown-unknown")],
)
def test_defined_visible_functions(tmp_path: Path, clang: str, target: str) -> None:
    obj = compile_object(tmp_path, clang, "lib", LIB, target)
    assert wasmobj.exported_functions([obj]) == [
        "add",
        "calls_import",
        "data_ptr",
        "shown",
        "weak_fn",
    ]
    assert not wasmobj.defines_main([obj])


def test_main_is_detected_and_not_exported(tmp_path: Path) -> None:
    lib = compile_object(tmp_path, "/usr/bin/clang-14", "lib", LIB, "wasm32-wasi")
    main = compile_object(tmp_path, "/usr/bin/clang-14", "main", MAIN, "wasm32-wasi")
    void_main = compile_object(
        tmp_path, "/usr/bin/clang-14", "vmain", "int main(void) { return 0; }\n", "wasm32-wasi"
    )
    assert wasmobj.defines_main([lib, main])
    assert wasmobj.read_symbols(void_main.read_bytes()) == wasmobj.ObjectSymbols((), True)
    assert "main" not in wasmobj.exported_functions([lib, main])


def test_write_export_file(tmp_path: Path) -> None:
    (tmp_path / "obj").mkdir()
    compile_object(tmp_path / "obj", "/usr/bin/clang-14", "lib", LIB, "wasm32-wasi")
    flags = ("-mexec-model=reactor",)
    chosen = wasmobj.write_export_file(tmp_path, ["obj/lib.o"], None, library_flags=flags)
    assert chosen == ["add", "calls_import", "data_ptr", "shown", "weak_fn"]
    lines = (tmp_path / "obj/exports.rsp").read_text().splitlines()
    assert lines[0] == '"-mexec-model=reactor"' and lines[1] == '"-Wl,--export=add"'

    assert wasmobj.write_export_file(tmp_path, ["obj/lib.o"], ("shown",), "obj/x.rsp") == ["shown"]
    assert (tmp_path / "obj/x.rsp").read_text() == '"-Wl,--export=shown"\n'

    with pytest.raises(CompileFailed, match=r"'helper'.*Functions it defines: add, calls_import"):
        wasmobj.write_export_file(tmp_path, ["obj/lib.o"], ("helper",))


def test_non_object_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(wasmobj.WasmFormatError, match="bad magic"):
        wasmobj.read_symbols(b"\x7fELF....")
    with pytest.raises(wasmobj.WasmFormatError, match="not a relocatable object"):
        wasmobj.read_symbols(b"\x00asm\x01\x00\x00\x00")


def test_narrow_exports_keeps_a_valid_module(tmp_path: Path) -> None:
    wat = tmp_path / "m.wat"
    wat.write_text(
        '(module (func (export "a") (result i32) i32.const 1)'
        ' (func (export "b") (result i32) i32.const 2) (memory (export "mem") 1))'
    )
    wasm = tmp_path / "m.wasm"
    subprocess.run(["wat2wasm", str(wat), "-o", str(wasm)], check=True)
    data = wasm.read_bytes()
    assert wasmobj.module_exports(data) == ["a", "b", "mem"]
    narrowed = wasmobj.narrow_exports(data, ["b"])
    assert wasmobj.module_exports(narrowed) == ["b"]
    out = tmp_path / "n.wasm"
    out.write_bytes(narrowed)
    subprocess.run(["wasm-validate", str(out)], check=True)
    with pytest.raises(CompileFailed, match="'c'"):
        wasmobj.narrow_exports(data, ["c"])
