"""FortranDriver with the real flang-19 / clang-19 / wasm2js: compile, then run the output.

The oracle for printed output is the native x86_64 build of the same program with
flang-new-19 and its own libFortranRuntime: pf's wasm runtime must print the same bytes.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
from pathlib import Path

import pytest
import wasmtime

from pf.config import Settings
from pf.errors import CompileFailed, InvalidOption
from pf.toolchains.fortran import FortranDriver, feature_of, mask_scratch
from tests.toolchains.support import compile_files, function_exports, instantiate, outputs

DEMO = Path(__file__).parents[2] / "demos" / "polyglot" / "fortran" / "hello.f90"
CASES = Path(__file__).parent / "cases" / "fortran"
FLANG = "/usr/bin/flang-new-19"
LLVM_AS_19 = "/usr/lib/llvm-19/bin/llvm-as"

LIB = b"""integer(c_int) function add(a, b) bind(C, name="add")
  use iso_c_binding
  integer(c_int), value :: a, b
  add = a + b
end function add
integer(c_int) function fact(n) bind(C, name="fact")
  use iso_c_binding
  integer(c_int), value :: n
  integer :: i
  fact = 1
  do i = 2, n
    fact = fact * i
  end do
end function fact
module helpers
contains
  integer function thrice(x)
    integer, intent(in) :: x
    thrice = 3 * x
  end function thrice
end module helpers
"""

SCALARS = b"""program scalars
  implicit none
  integer :: n = 42
  real :: r = 3.5
  double precision :: d = 1.0d0
  logical :: t = .true.
  integer(1) :: i1 = -5
  integer(2) :: i2 = 300
  integer(8) :: i8 = 9000000000_8
  complex :: c = (1.0, -2.5)
  character(len=5) :: s = 'ab'
  print *, "Hello from Fortran", 42
  print *, n, -7, r, d, t, .false.
  print *, 3.5, 1.0d0, 0.1, 0.05, 100.0, 1234567.0, 1e7, 1.0/3.0, 2.0d0/3.0d0, -0.0
  print *, huge(1.0), tiny(1.0), huge(1d0), 5d-324, 1d15, 1d16, 0.0993283680354652d0
  print *, i1, i2, i8, c, s, '|', 'x', 'y', ''
  print *
  write(*,*) 'write', 1, .true.
  print *, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, &
           22, 23, 24, 25, 26, 27, 28, 29, 30, 31
  print *, 'a long string that is longer than one record of list-directed output, ', &
           'so it wraps onto the next line', 7
end program scalars
"""

STOP_CODE = b"""program s
  print *, 'before'
  stop 3
end program s
"""

ERROR_STOP = b"""program s
  print *, 'x'
  error stop 'bad news'
end program s
"""

NODE_WASI = """
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';
const wasi = new WASI({ version: 'preview1', args: [], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(readFileSync(process.argv[2]));
const instance = await WebAssembly.instantiate(module, wasi.getImportObject());
process.exitCode = wasi.start(instance);
"""

NODE_ASM = """
const m = await import(process.argv[2]);
console.log(JSON.stringify({ add: m.add(2, 3), fact: m.fact(10) }));
"""


def build(
    settings: Settings, target: str, sources: dict[str, bytes], **options: object
) -> dict[str, Path]:
    return outputs(compile_files(settings, "fortran", target, sources, **options))


def native(source: bytes, tmp_path: Path) -> subprocess.CompletedProcess[bytes]:
    """The oracle: the same program built for x86_64 with flang's own runtime."""
    folder = tmp_path / "native"
    folder.mkdir(exist_ok=True)
    (folder / "prog.f90").write_bytes(source)
    subprocess.run([FLANG, "prog.f90", "-o", "prog"], cwd=folder, check=True)
    return subprocess.run([str(folder / "prog")], capture_output=True, check=False)


def run_start(path: Path, tmp_path: Path) -> tuple[bytes, bytes, int]:
    """Run a WASI command under wasmtime: (stdout, stderr, exit code)."""
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    store, exports = instantiate(path, stdout, stderr)
    try:
        exports["_start"](store)  # type: ignore[operator]
        code = 0
    except wasmtime.ExitTrap as exit_:  # STOP calls exit(), even with code 0
        code = exit_.code
    return stdout.read_bytes(), stderr.read_bytes(), code


def test_demo_hello_prints_like_native_flang(settings: Settings, tmp_path: Path) -> None:
    out = build(settings, "wasm", {"hello.f90": DEMO.read_bytes()})
    stdout, stderr, code = run_start(out["hello.wasm"], tmp_path)
    assert stdout.startswith(b" Hello from Fortran 42\n")
    expected = native(DEMO.read_bytes(), tmp_path)
    assert (stdout, stderr, code) == (expected.stdout, expected.stderr, expected.returncode)


def test_demo_hello_under_node_wasi(settings: Settings, tmp_path: Path) -> None:
    wasm = build(settings, "wasm", {"hello.f90": DEMO.read_bytes()})["hello.wasm"]
    script = tmp_path / "run.mjs"
    script.write_text(NODE_WASI)
    done = subprocess.run(
        ["node", "--no-warnings", str(script), str(wasm)], capture_output=True, check=True
    )
    assert done.stdout == native(DEMO.read_bytes(), tmp_path).stdout


@pytest.mark.parametrize(
    "source", [SCALARS, STOP_CODE, ERROR_STOP], ids=["scalars", "stop-code", "error-stop"]
)
def test_output_matches_native_flang(settings: Settings, tmp_path: Path, source: bytes) -> None:
    out = build(settings, "wasm", {"prog.f90": source})
    expected = native(source, tmp_path)
    got = run_start(out["prog.wasm"], tmp_path)
    assert got == (expected.stdout, expected.stderr, expected.returncode)


def test_demo_functions_are_callable(settings: Settings) -> None:
    out = build(settings, "wasm", {"hello.f90": DEMO.read_bytes()})
    assert {"_start", "add", "fact", "dsum"} <= function_exports(out["hello.wasm"])
    store, exports = instantiate(out["hello.wasm"])
    assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]
    assert exports["fact"](store, 10) == 3628800  # type: ignore[operator]
    memory = exports["memory"]
    assert isinstance(memory, wasmtime.Memory)
    # The top of linear memory is unused heap; the array is passed by address.
    base = memory.data_len(store) - 64
    memory.write(store, struct.pack("<4d", 1.5, 2.5, 3.0, 4.0), base)
    assert exports["dsum"](store, 4, base) == 11.0  # type: ignore[operator]


def test_library_is_a_reactor_exporting_bind_c_names(settings: Settings) -> None:
    out = build(settings, "wasm", {"lib.f90": LIB})
    # thrice is a module procedure (flang's _QMhelpersPthrice): not a C-callable API.
    assert function_exports(out["lib.wasm"]) == {"add", "fact", "_initialize"}
    store, exports = instantiate(out["lib.wasm"])
    assert exports["fact"](store, 10) == 3628800  # type: ignore[operator]


def test_exports_option_narrows(settings: Settings) -> None:
    out = build(settings, "wasm", {"lib.f90": LIB}, exports="fact")
    assert function_exports(out["lib.wasm"]) == {"fact", "_initialize"}
    with pytest.raises(CompileFailed, match="'nope'"):
        build(settings, "wasm", {"lib.f90": LIB}, exports="add,nope")


def test_a_missing_export_lists_only_the_programs_own_functions(settings: Settings) -> None:
    with pytest.raises(CompileFailed) as caught:
        build(settings, "wasm", {"hello.f90": DEMO.read_bytes()}, exports="nope")
    assert caught.value.message.endswith("Functions it defines: add, dsum, fact")


@pytest.mark.parametrize("opt_level", ["0", "3", "s", "z"])
def test_opt_levels(settings: Settings, opt_level: str) -> None:
    out = build(settings, "wasm", {"lib.f90": LIB}, opt_level=opt_level)
    store, exports = instantiate(out["lib.wasm"])
    assert exports["add"](store, 40, 2) == 42  # type: ignore[operator]


def test_modules_across_files_in_any_order(settings: Settings, tmp_path: Path) -> None:
    user = b"program p\n  use ops\n  print *, twice(21)\nend program p\n"
    ops = (
        b"module ops\ncontains\n  integer function twice(x)\n    integer, intent(in) :: x\n"
        b"    twice = 2 * x\n  end function twice\nend module ops\n"
    )
    out = build(settings, "wasm", {"main.f90": user, "lib/ops.f90": ops})
    assert run_start(out["main.wasm"], tmp_path) == (b" 42\n", b"", 0)


def test_asm_of_pure_functions_runs_jitless(settings: Settings, tmp_path: Path) -> None:
    mjs = build(settings, "asm", {"lib.f90": LIB})["lib.mjs"]
    module = tmp_path / "lib.mjs"
    module.write_bytes(mjs.read_bytes())
    script = tmp_path / "run.mjs"
    script.write_text(NODE_ASM)
    done = subprocess.run(
        ["node", "--jitless", str(script), str(module)], capture_output=True, check=True, text=True
    )
    assert json.loads(done.stdout) == {"add": 5, "fact": 3628800}


def test_llvm_ir_verifies_with_llvm_19(settings: Settings) -> None:
    ir = build(settings, "llvm", {"lib.f90": LIB})["lib.ll"]
    subprocess.run([LLVM_AS_19, str(ir), "-o", os.devnull], check=True)
    text = ir.read_text()
    assert "define i32 @add(" in text
    assert str(settings.cache_dir) not in text


def test_llvm_with_main_program_has_no_scratch_paths(settings: Settings) -> None:
    ir = build(settings, "llvm", {"hello.f90": DEMO.read_bytes()}, debug=True)["hello.ll"]
    subprocess.run([LLVM_AS_19, str(ir), "-o", os.devnull], check=True)
    text = ir.read_text()
    assert 'c"hello.f90\\00"' in text
    assert "build-" not in text and str(settings.cache_dir) not in text


@pytest.mark.parametrize(
    "options", [{"opt_level": "s"}, {"passes": "mem2reg,instcombine"}, {"opt_level": "0"}]
)
def test_llvm_optimisation_through_opt_19(settings: Settings, options: dict[str, str]) -> None:
    sources = {"lib.f90": LIB, "more.f90": b"subroutine noop() bind(C)\nend subroutine\n"}
    ir = build(settings, "llvm", sources, **options)["lib.ll"]
    subprocess.run([LLVM_AS_19, str(ir), "-o", os.devnull], check=True)
    assert "@noop(" in ir.read_text()


def test_llvm_parallel_is_openmp(settings: Settings) -> None:
    source = b"""subroutine scale(n, x) bind(C)
  integer, value :: n
  real(8) :: x(n)
  integer :: i
  !$omp parallel do
  do i = 1, n
    x(i) = 2 * x(i)
  end do
end subroutine
"""
    ir = build(settings, "llvm", {"omp.f90": source}, parallel=True)["omp.ll"]
    subprocess.run([LLVM_AS_19, str(ir), "-o", os.devnull], check=True)
    assert "__kmpc_fork_call" in ir.read_text()


@pytest.mark.parametrize("target", ["wasm", "asm"])
def test_wasm_refuses_parallel_and_passes(settings: Settings, target: str) -> None:
    with pytest.raises(InvalidOption, match="OpenMP"):
        build(settings, target, {"lib.f90": LIB}, parallel=True)
    with pytest.raises(InvalidOption, match="passes"):
        build(settings, target, {"lib.f90": LIB}, passes="mem2reg")


def test_syntax_error_points_at_the_source(settings: Settings) -> None:
    source = b"program bad\n  integer :: x\n  x = = 3\nend program\n"
    with pytest.raises(CompileFailed) as caught:
        build(settings, "wasm", {"bad.f90": source})
    first = caught.value.diagnostics[0]
    assert (first.file, first.line, first.col, first.severity) == ("bad.f90", 3, 5, "error")


@pytest.mark.parametrize(
    ("statement", "feature"),
    [
        ("read *, n", "list-directed READ is not supported by pf's Fortran wasm runtime"),
        ("write(*,'(I5)') n", "formatted WRITE/PRINT (a FMT= format) is not supported"),
    ],
)
def test_unsupported_feature_is_named(settings: Settings, statement: str, feature: str) -> None:
    source = f"program p\n  integer :: n = 1\n  {statement}\n  print *, n\nend program p\n"
    with pytest.raises(CompileFailed) as caught:
        build(settings, "wasm", {"feat.f90": source.encode()})
    assert feature in caught.value.message or any(
        feature in d.message for d in caught.value.diagnostics
    )
    located = [d for d in caught.value.diagnostics if feature in d.message]
    assert located and (located[0].file, located[0].line) == ("feat.f90", 3)
    assert "undefined symbol" not in caught.value.log


def test_feature_names() -> None:
    assert feature_of("_FortranAioBeginExternalListInput") == "list-directed READ"
    assert feature_of("_FortranAAllocatableAllocate") == "ALLOCATE/DEALLOCATE"
    assert feature_of("_FortranASumInteger4").startswith("the SUM intrinsic")
    assert feature_of("_FortranAMaxlocReal8").startswith("the MAXLOC intrinsic")
    assert feature_of("_FortranAWhatever") == "the Fortran runtime routine _FortranAWhatever"


def test_mask_scratch_renames_hex_named_path_strings(tmp_path: Path) -> None:
    path = f"{tmp_path}/a.f90\x00".encode()
    name = "_QQclX" + path.hex().upper()
    body = "".join(chr(b) if b else "\\00" for b in path)
    ir = (
        f'@{name} = linkonce constant [{len(path)} x i8] c"{body}", comdat\n'
        f"  call ptr @f(ptr @{name}, i32 3)\n"
    )
    masked = mask_scratch(ir, tmp_path)
    new = "_QQclX" + b"a.f90\x00".hex().upper()
    assert masked.splitlines() == [
        f'@{new} = linkonce constant [6 x i8] c"a.f90\\00", comdat',
        f"  call ptr @f(ptr @{new}, i32 3)",
    ]


@pytest.mark.parametrize("case", sorted(p.stem for p in CASES.glob("*.stderr")))
def test_golden_diagnostics(case: str) -> None:
    stderr = (CASES / f"{case}.stderr").read_text()
    expected = json.loads((CASES / f"{case}.json").read_text())
    assert [d.to_dict() for d in FortranDriver().diagnostics(stderr)] == expected
