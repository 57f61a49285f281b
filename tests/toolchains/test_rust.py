"""The Rust driver against the real Debian rustc 1.63 / rust-lld / opt-14 / wasm2js.

Every build goes through the engine and its output is executed: wasm in wasmtime,
asm.js under ``node --jitless``, LLVM IR through llvm-as-14 and ``opt-14 -verify``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from pf.config import Settings
from pf.engine import BuildResult
from pf.errors import CompileFailed, InvalidOption, RequestError, Unbuildable
from pf.toolchains import CompileRequest, Options, Run, SourceFile, get_driver
from pf.toolchains.rust import RustDriver
from tests.toolchains.support import as_file, compile_files
from tests.tools import needs_tool

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "demos" / "polyglot" / "rust" / "lib.rs"
CASES = Path(__file__).parent / "cases" / "rust"

LLVM_AS = "/usr/bin/llvm-as-14"
OPT = "/usr/bin/opt-14"

pytestmark = needs_tool(
    "/usr/bin/rustc",
    "/usr/bin/rust-lld",
    install="apt-get install -y --no-install-recommends rustc libstd-rust-dev-wasm32 lld-14",
)

DEMO_EXPORTS = {"memory", "add", "fibonacci", "alloc", "dealloc", "greet"}

CHECKED_DIV = """\
#[no_mangle]
pub extern "C" fn checked_div(a: i32, b: i32) -> i32 {
    match a.checked_div(b) {
        Some(q) => q,
        None => panic!("division by zero"),
    }
}
"""


def build(settings: Settings, target: str, files: dict[str, str], **options: Any) -> BuildResult:
    encoded = {name: text.encode() for name, text in files.items()}
    return compile_files(settings, "rust", target, encoded, **options)


def artifact(result: BuildResult, suffix: str) -> Path:
    (found,) = [a for a in result.artifacts if a.name.endswith(suffix)]
    return as_file(found)


def instantiate(
    path: Path, imports: dict[str, wasmtime.Func] | None = None
) -> tuple[wasmtime.Store, dict[str, Any]]:
    store = wasmtime.Store()
    module = wasmtime.Module.from_file(store.engine, str(path))
    given = imports or {}
    instance = wasmtime.Instance(store, module, [given[imp.name or ""] for imp in module.imports])
    return store, dict(instance.exports(store).items())


def export_names(path: Path) -> set[str]:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(path))
    return {export.name for export in module.exports}


def demo() -> dict[str, str]:
    return {"lib.rs": DEMO.read_text()}


def greet(store: wasmtime.Store, ex: dict[str, Any], name: bytes) -> str:
    memory = ex["memory"]
    ptr = ex["alloc"](store, len(name))
    memory.write(store, name, ptr)
    out = ex["greet"](store, ptr, len(name))
    ex["dealloc"](store, ptr, len(name))
    text = bytearray()
    while (byte := memory.read(store, out + len(text), out + len(text) + 1)) != b"\0":
        text += byte
    ex["dealloc"](store, out, len(text) + 1)
    return text.decode()


# --- wasm ---------------------------------------------------------------------------


def test_demo_wasm_runs(settings: Settings) -> None:
    result = build(settings, "wasm", demo())
    wasm = artifact(result, ".wasm")
    assert [a.name for a in result.artifacts] == ["lib.wasm"]
    # Exactly the #[no_mangle] functions and the memory strings need: rustc's own link
    # would add __data_end and __heap_base.
    assert export_names(wasm) == DEMO_EXPORTS
    store, ex = instantiate(wasm)
    assert ex["add"](store, 2, 3) == 5
    assert ex["fibonacci"](store, 10) == 55
    assert ex["fibonacci"](store, 0) == 0
    assert greet(store, ex, b"pf") == "Hello, pf!"
    assert greet(store, ex, "wörld".encode()) == "Hello, wörld!"


@pytest.mark.parametrize("level", ["0", "1", "2", "3", "s", "z"])
def test_every_opt_level(settings: Settings, level: str) -> None:
    store, ex = instantiate(artifact(build(settings, "wasm", demo(), opt_level=level), ".wasm"))
    assert ex["add"](store, 40, 2) == 42
    assert ex["fibonacci"](store, 10) == 55


def test_exports_narrow_to_the_named_functions(settings: Settings) -> None:
    wasm = artifact(build(settings, "wasm", demo(), exports="add"), ".wasm")
    # Memory stays exported: a host needs it for anything passed by pointer.
    assert export_names(wasm) == {"memory", "add"}
    store, ex = instantiate(wasm)
    assert ex["add"](store, 2, 3) == 5
    wasm = artifact(build(settings, "wasm", demo(), exports=["greet", "alloc"]), ".wasm")
    assert export_names(wasm) == {"memory", "greet", "alloc"}


def test_missing_export_is_an_error_naming_it(settings: Settings) -> None:
    with pytest.raises(CompileFailed) as failed:
        build(settings, "wasm", demo(), exports="add,nope")
    (diagnostic,) = failed.value.diagnostics
    assert diagnostic.severity == "error"
    assert "'nope'" in diagnostic.message
    assert "nope" in failed.value.log


def test_panic_traps(settings: Settings) -> None:
    store, ex = instantiate(artifact(build(settings, "wasm", {"div.rs": CHECKED_DIV}), ".wasm"))
    assert ex["checked_div"](store, 7, 2) == 3
    with pytest.raises(wasmtime.Trap, match="unreachable"):
        ex["checked_div"](store, 7, 0)


def test_modules_beside_the_crate_root(settings: Settings) -> None:
    files = {
        "my-lib.rs": 'mod util;\n#[no_mangle]\npub extern "C" fn triple(x: i32) -> i32 '
        "{ util::times(x, 3) }\n",
        "util.rs": "pub fn times(x: i32, n: i32) -> i32 { x * n }\n",
    }
    result = build(settings, "wasm", files)
    assert [a.name for a in result.artifacts] == ["my-lib.wasm"]
    wasm = artifact(result, ".wasm")
    assert export_names(wasm) == {"memory", "triple"}
    store, ex = instantiate(wasm)
    assert ex["triple"](store, 14) == 42


def test_extern_functions_become_imports(settings: Settings) -> None:
    source = (
        'extern "C" {\n    fn host_log(x: i32);\n}\n'
        '#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 {\n'
        "    unsafe { host_log(a) };\n    a + b\n}\n"
    )
    wasm = artifact(build(settings, "wasm", {"lib.rs": source}), ".wasm")
    seen: list[int] = []
    store = wasmtime.Store()
    log = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []), seen.append)
    module = wasmtime.Module.from_file(store.engine, str(wasm))
    assert [(i.module, i.name) for i in module.imports] == [("env", "host_log")]
    add = wasmtime.Instance(store, module, [log]).exports(store)["add"]
    assert isinstance(add, wasmtime.Func)
    assert add(store, 2, 3) == 5
    assert seen == [2]


def test_debug_keeps_names_and_debuginfo(settings: Settings) -> None:
    plain = artifact(build(settings, "wasm", demo()), ".wasm").read_bytes()
    debug = artifact(build(settings, "wasm", demo(), debug=True), ".wasm").read_bytes()
    assert b"\x04name" not in plain and b".debug_info" not in plain
    assert b"\x04name" in debug and b".debug_info" in debug


def test_warnings_reach_the_result(settings: Settings) -> None:
    source = (
        '#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 {\n'
        "    let x = 1;\n    a + b\n}\n"
    )
    result = build(settings, "wasm", {"lib.rs": source})
    assert [d.to_dict() for d in result.diagnostics] == [
        {
            "file": "lib.rs",
            "line": 3,
            "col": 9,
            "severity": "warning",
            "message": "unused variable: `x`",
        }
    ]


def test_type_error_points_at_the_users_file(settings: Settings) -> None:
    files = {
        "lib.rs": 'mod helper;\n#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 {\n'
        '    let s: i32 = "text";\n    a + b + s + helper::two()\n}\n',
        "helper.rs": "pub fn two() -> i32 {\n    2u8\n}\n",
    }
    with pytest.raises(CompileFailed) as failed:
        build(settings, "wasm", files)
    found = {(d.file, d.line, d.col, d.severity, d.message) for d in failed.value.diagnostics}
    assert ("lib.rs", 4, 18, "error", "mismatched types [E0308]") in found
    assert ("helper.rs", 2, 5, "error", "mismatched types [E0308]") in found


# --- llvm ---------------------------------------------------------------------------


def verify_ir(path: Path) -> str:
    subprocess.run([LLVM_AS, str(path), "-o", os.devnull], check=True, capture_output=True)
    subprocess.run([OPT, "-verify", "-disable-output", str(path)], check=True, capture_output=True)
    return path.read_text()


def test_llvm_ir_is_valid_llvm14_for_wasm32(settings: Settings) -> None:
    result = build(settings, "llvm", demo())
    assert [a.name for a in result.artifacts] == ["lib.ll"]
    text = verify_ir(artifact(result, ".ll"))
    assert 'target triple = "wasm32-unknown-unknown"' in text
    assert re.search(r"^define .*i32 @add\(i32 ", text, re.MULTILINE)
    assert re.search(r"^define .*i32 @fibonacci\(i32 ", text, re.MULTILINE)


def test_llvm_passes_are_applied(settings: Settings) -> None:
    raw = verify_ir(artifact(build(settings, "llvm", demo(), opt_level="0"), ".ll"))
    result = build(settings, "llvm", demo(), opt_level="0", passes="default<O2>")
    optimised = verify_ir(artifact(result, ".ll"))
    assert "alloca" in raw
    assert optimised.count("\ndefine ") < raw.count("\ndefine ")
    assert optimised.count("alloca") < raw.count("alloca")
    assert re.search(r"^define .*i32 @add\(i32 ", optimised, re.MULTILINE)


# --- asm ----------------------------------------------------------------------------


@needs_tool("node")
def test_asm_runs_without_webassembly(settings: Settings, tmp_path: Path) -> None:
    result = build(settings, "asm", demo())
    assert [a.name for a in result.artifacts] == ["lib.mjs"]
    # The cache stores artifacts by digest; node needs the .mjs name to load an ES module.
    (mjs,) = result.export(tmp_path / "out")
    script = tmp_path / "run.mjs"
    script.write_text(
        f"import * as m from {json.dumps(mjs.as_uri())};\n"
        "const p = m.alloc(2);\n"
        "new Uint8Array(m.memory.buffer).set([112, 102], p);\n"
        "const g = m.greet(p, 2);\n"
        "const heap = new Uint8Array(m.memory.buffer);\n"
        "let s = ''; for (let i = g; heap[i]; i++) s += String.fromCharCode(heap[i]);\n"
        "console.log(JSON.stringify([typeof WebAssembly, m.add(2, 3), m.fibonacci(10), s]));\n"
    )
    done = subprocess.run(
        ["node", "--jitless", str(script)], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == ["undefined", 5, 55, "Hello, pf!"]


# --- options and plans --------------------------------------------------------------


def request(target: str = "wasm", **options: Any) -> CompileRequest:
    sources = (SourceFile("lib.rs", DEMO.read_bytes()),)
    return CompileRequest("rust", target, sources, Options.parse(options))


@pytest.mark.parametrize("target", ["wasm", "llvm", "asm"])
def test_parallel_is_refused(target: str) -> None:
    with pytest.raises(InvalidOption, match="OpenMP"):
        RustDriver().plan(request(target, parallel=True))


@pytest.mark.parametrize("target", ["wasm", "asm"])
def test_passes_only_for_llvm(target: str) -> None:
    with pytest.raises(InvalidOption, match="target 'llvm' only"):
        RustDriver().plan(request(target, passes="default<O2>"))


@pytest.mark.parametrize(
    "options",
    [
        {"opt_level": "4"},
        {"opt_level": "fast"},
        {"debug": "maybe"},
        {"passes": "default<O2>; rm -rf /"},
        {"exports": "add,1bad"},
        {"lto": "fat"},
    ],
)
def test_bad_option_values_are_refused(options: dict[str, str]) -> None:
    with pytest.raises(InvalidOption):
        request("wasm", **options)


def test_the_first_rs_file_is_the_crate_root_else_the_first_file() -> None:
    def root(*names: str) -> str:
        sources = tuple(SourceFile(name, b"") for name in names)
        (compile_step,) = [
            s
            for s in RustDriver().plan(CompileRequest("rust", "wasm", sources)).steps
            if s.label == "compile"
        ]
        return compile_step.describe()[-1]

    assert root("notes.txt", "lib.rs") == "lib.rs"
    assert root("LIB.RS") == "LIB.RS"
    assert root("notes.txt") == "notes.txt"


def test_a_request_needs_a_source() -> None:
    with pytest.raises(RequestError, match="needs a source file"):
        RustDriver().plan(CompileRequest("rust", "wasm", ()))


def test_an_unreadable_crate_root_is_reported_without_an_empty_location(
    settings: Settings,
) -> None:
    with pytest.raises(CompileFailed) as caught:
        compile_files(settings, "rust", "wasm", {"garbage.rs": bytes(range(128, 256))})
    (error,) = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert (error.file, error.line) == ("rustc", 0)
    assert str(error).startswith("rustc: error: couldn't read garbage.rs")


@pytest.mark.parametrize("target", ["wasm", "llvm", "asm"])
def test_plans_are_relative_and_name_their_tools(target: str) -> None:
    driver = get_driver("rust")
    plan = driver.plan(request(target, opt_level="s"))
    names = {spec.name for spec in plan.tools}
    for step in plan.steps:
        if not isinstance(step, Run):
            continue
        assert step.argv[0] in names
        assert not any(arg.startswith("/") for arg in step.argv[1:])
    assert plan.tools[0].name == "rustc"
    assert plan.env == {}
    assert [o.path for o in plan.outputs] == [
        {"wasm": "out/lib.wasm", "llvm": "out/lib.ll", "asm": "out/lib.mjs"}[target]
    ]


# --- diagnostics golden files -------------------------------------------------------


@pytest.mark.parametrize("case", sorted(p.stem for p in CASES.glob("*.stderr")))
def test_diagnostics_golden(case: str) -> None:
    stderr = (CASES / f"{case}.stderr").read_text()
    expected = json.loads((CASES / f"{case}.json").read_text())
    assert [d.to_dict() for d in RustDriver().diagnostics(stderr)] == expected


def test_wasm_bindgen_code_is_refused_naming_what_pf_builds_instead() -> None:
    source = b"use wasm_bindgen::prelude::*;\n#[wasm_bindgen]\npub fn greet() {}\n"
    for target in ("wasm", "llvm", "asm"):
        request = CompileRequest("rust", target, (SourceFile("src/lib.rs", source),), Options())
        with pytest.raises(Unbuildable) as caught:
            RustDriver().plan(request)
        assert "src/lib.rs uses wasm-bindgen" in caught.value.message
        assert "wasm-bindgen CLI" in caught.value.message
        assert caught.value.hint is not None
        assert '#[no_mangle] pub extern "C" fn' in caught.value.hint
        assert caught.value.http_status == 400
