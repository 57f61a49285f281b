"""WatDriver with the real wat2wasm / wasm2js / wasm2c + clang: compile, then run the output."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pf.config import Settings
from pf.engine import compile_sources
from pf.errors import CompileFailed, InvalidOption, RequestError
from pf.toolchains import CompileRequest, Options, SourceFile
from pf.toolchains.wat import WatDriver
from tests.toolchains.support import as_file, compile_files, instantiate

DEMO = Path(__file__).parents[2] / "demos" / "polyglot" / "wat" / "add.wat"
CASES = Path(__file__).parent / "cases" / "wat"

TWO = b"""(module $two
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "sub") (param i32 i32) (result i32) local.get 0 local.get 1 i32.sub)
  (memory (export "memory") 1))
"""


def build(settings: Settings, target: str, name: str, text: bytes, **options: object) -> Path:
    (artifact,) = compile_files(settings, "wat", target, {name: text}, **options).artifacts
    return as_file(artifact)


def test_wasm_add(settings: Settings) -> None:
    store, exports = instantiate(build(settings, "wasm", "add.wat", DEMO.read_bytes()))
    assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]


def test_debug_keeps_names(settings: Settings) -> None:
    plain = build(settings, "wasm", "add.wat", DEMO.read_bytes()).read_bytes()
    debug = build(settings, "wasm", "add.wat", DEMO.read_bytes(), debug=True).read_bytes()
    assert b"name" not in plain and b"name" in debug


def test_exports_narrow_the_module(settings: Settings) -> None:
    path = build(settings, "wasm", "two.wat", TWO, exports="sub")
    store, exports = instantiate(path)
    assert set(exports) == {"sub"}
    assert exports["sub"](store, 7, 2) == 5  # type: ignore[operator]
    assert set(instantiate(build(settings, "wasm", "two.wat", TWO))[1]) == {"add", "sub", "memory"}


def test_exports_naming_a_missing_export_fails(settings: Settings) -> None:
    with pytest.raises(CompileFailed, match=r"'mul'.*add, sub, memory"):
        build(settings, "wasm", "two.wat", TWO, exports="mul")


def test_asm_runs_without_webassembly(settings: Settings, tmp_path: Path) -> None:
    js = tmp_path / "add.mjs"
    js.write_bytes(build(settings, "asm", "add.wat", DEMO.read_bytes()).read_bytes())
    script = (
        f"import {{ add }} from {json.dumps(str(js))}; console.log(typeof WebAssembly, add(2, 3));"
    )
    done = subprocess.run(
        ["node", "--jitless", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split() == ["undefined", "5"]


def test_llvm_via_wasm2c_verifies(settings: Settings) -> None:
    request = CompileRequest("wat", "llvm", (SourceFile("add.wat", DEMO.read_bytes()),))
    result = compile_sources(request, settings)
    assert result.note is not None and "wasm2c runtime model" in result.note
    ir = as_file(result.artifacts[0])
    subprocess.run(["llvm-as-14", str(ir), "-o", os.devnull], check=True)
    assert "@Z_addZ_add" in ir.read_text()


def test_llvm_passes_and_narrowed_exports(settings: Settings) -> None:
    ir = build(settings, "llvm", "two.wat", TWO, exports="sub", opt_level=0, passes="mem2reg")
    subprocess.run(["opt-14", "-verify", "-S", str(ir), "-o", os.devnull], check=True)
    text = ir.read_text()
    assert "Z_twoZ_sub" in text and "Z_twoZ_add" not in text


def test_syntax_error_has_line_and_column(settings: Settings) -> None:
    bad = b'(module\n  (func (export "f") (result i32)\n    i32.const 1\n    i32.addd))\n'
    with pytest.raises(CompileFailed) as caught:
        build(settings, "wasm", "dir/bad.wat", bad)
    assert [d.to_dict() for d in caught.value.diagnostics] == [
        {
            "file": "dir/bad.wat",
            "line": 4,
            "col": 5,
            "severity": "error",
            "message": "unexpected token i32.addd, expected ).",
        }
    ]


def test_refusals() -> None:
    driver = WatDriver()
    one = (SourceFile("a.wat", b"(module)"),)
    with pytest.raises(InvalidOption, match="parallel"):
        driver.plan(CompileRequest("wat", "wasm", one, Options(parallel=True)))
    with pytest.raises(InvalidOption, match="target 'llvm' only"):
        driver.plan(CompileRequest("wat", "asm", one, Options(passes="mem2reg")))
    with pytest.raises(RequestError, match="exactly one module"):
        driver.plan(CompileRequest("wat", "wasm", (*one, SourceFile("b.wat", b"(module)"))))


@pytest.mark.parametrize("case", sorted(p.stem for p in CASES.glob("*.stderr")))
def test_golden_diagnostics(case: str) -> None:
    stderr = (CASES / f"{case}.stderr").read_text()
    expected = json.loads((CASES / f"{case}.json").read_text())
    assert [d.to_dict() for d in WatDriver().diagnostics(stderr)] == expected
