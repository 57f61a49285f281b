"""debug=true builds from two fresh caches are byte-identical: no scratch path gets in."""

from __future__ import annotations

from pathlib import Path

import pytest

from pf.config import Settings
from tests.toolchains.support import compile_files, fresh_settings, instantiate, outputs

ROOT = Path(__file__).resolve().parents[2]
C = b"int add(int a, int b) { return a + b; }\n"
RUST = b'#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 { a + b }\n'
FORTRAN = (ROOT / "demos" / "polyglot" / "fortran" / "hello.f90").read_bytes()
WAT = b'(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'

CASES = [
    ("c", "wasm", {"add.c": C}),
    ("c", "llvm", {"add.c": C}),
    ("c", "asm", {"add.c": C}),
    ("rust", "wasm", {"add.rs": RUST}),
    ("rust", "llvm", {"add.rs": RUST}),
    ("fortran", "wasm", {"hello.f90": FORTRAN}),
    ("fortran", "llvm", {"hello.f90": FORTRAN}),
    ("wat", "llvm", {"add.wat": WAT}),
]


def build_in(root: Path, language: str, target: str, files: dict[str, bytes]) -> bytes:
    settings: Settings = fresh_settings(root)
    (path,) = outputs(compile_files(settings, language, target, files, debug=True)).values()
    return path.read_bytes()


@pytest.mark.parametrize(("language", "target", "files"), CASES, ids=lambda c: str(c)[:12])
def test_debug_builds_from_fresh_caches_are_identical(
    tmp_path: Path, language: str, target: str, files: dict[str, bytes]
) -> None:
    first = build_in(tmp_path / "one", language, target, files)
    second = build_in(tmp_path / "second-cache", language, target, files)
    assert first == second
    assert str(tmp_path).encode() not in first  # the scratch dirs live under it
    if target == "llvm":
        assert b'directory: "."' in first


@pytest.mark.parametrize("language", ["c", "rust"])
def test_debug_wasm_still_runs(tmp_path: Path, language: str) -> None:
    files = {"add.c": C} if language == "c" else {"add.rs": RUST}
    settings = fresh_settings(tmp_path)
    out = outputs(compile_files(settings, language, "wasm", files, debug=True))
    store, exports = instantiate(out["add.wasm"])
    assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]
