"""A request's language decides, not the file suffix: other names and upper-case suffixes
compile as that language, and diagnostics keep the user's file name."""

from __future__ import annotations

import pytest

from pf.config import Settings
from pf.errors import CompileFailed
from tests.toolchains.support import compile_files, instantiate, outputs

C = b"int add(int a, int b) { return a + b; }\n"
RUST = b'#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 { a + b }\n'
WAT = b'(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))'
FORTRAN = b"""integer(c_int) function add(a, b) bind(C, name="add")
  use iso_c_binding
  integer(c_int), value :: a, b
  add = a + b
end function add
"""

CASES = [
    ("c", "add.txt", C),
    ("c", "ADD.C", C),
    ("rust", "add.txt", RUST),
    ("rust", "ADD.RS", RUST),
    ("wat", "add.txt", WAT),
    ("wat", "ADD.WAT", WAT),
    ("fortran", "add.txt", FORTRAN),
    ("fortran", "ADD.F90", FORTRAN),
]


@pytest.mark.parametrize(("language", "name", "source"), CASES)
def test_any_file_name_compiles_as_the_requested_language(
    settings: Settings, language: str, name: str, source: bytes
) -> None:
    stem = name.split(".")[0]
    out = outputs(compile_files(settings, language, "wasm", {name: source}))
    store, exports = instantiate(out[f"{stem}.wasm"])
    assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]


@pytest.mark.parametrize("language", ["c", "rust", "fortran"])
def test_llvm_target_too(settings: Settings, language: str) -> None:
    source = {"c": C, "rust": RUST, "fortran": FORTRAN}[language]
    out = outputs(compile_files(settings, language, "llvm", {"add.txt": source}))
    assert "@add(" in out["add.ll"].read_text()


def test_c_headers_are_still_only_included(settings: Settings) -> None:
    files = {
        "main.txt": b'#include "util.h"\nint add(int a, int b) { return twice(a) + b - a; }\n',
        "util.h": b"static inline int twice(int x) { return 2 * x; }\n",
    }
    out = outputs(compile_files(settings, "c", "wasm", files))
    store, exports = instantiate(out["main.wasm"])
    assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]


@pytest.mark.parametrize(
    ("language", "name", "source", "line"),
    [
        ("c", "sub/bad.txt", b"int f(void) {\n  return 1 +;\n}\n", 2),
        ("rust", "sub/bad.txt", b"fn f() -> i32 {\n    1 +\n}\n", 3),
        ("wat", "sub/bad.txt", b"(module\n  (func (nonsense)))\n", 2),
        ("fortran", "sub/bad.txt", b"subroutine s()\n  x = = 1\nend subroutine\n", 2),
    ],
)
def test_diagnostics_name_the_users_file(
    settings: Settings, language: str, name: str, source: bytes, line: int
) -> None:
    with pytest.raises(CompileFailed) as caught:
        compile_files(settings, language, "wasm", {name: source})
    errors = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert errors and (errors[0].file, errors[0].line) == (name, line)
