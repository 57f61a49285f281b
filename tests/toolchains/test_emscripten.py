"""The Emscripten driver: which C it takes, its argv, and real emcc output run in node.

The compiles go through the engine with the settings' sandbox (bubblewrap here), so
they also show that emcc works confined: its frozen cache read-only, its temporary
files in the sandbox's own /tmp.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from pf.config import Settings
from pf.errors import CompileFailed, InvalidOption, RequestError
from pf.toolchains import CompileRequest, Options, SourceFile, driver_for_request
from pf.toolchains.emscripten import EmscriptenDriver, wants
from tests.toolchains.support import compile_files, outputs
from tests.tools import needs_tool

pytestmark = needs_tool("emcc", "node")

TRAP = b"""#include <emscripten.h>

EMSCRIPTEN_KEEPALIVE
int trigger_trap() {
    __builtin_trap();
    return 0;
}

EMSCRIPTEN_KEEPALIVE
int add(int a, int b) { return a + b; }

int hidden(int x) { return x; }

EMSCRIPTEN_KEEPALIVE
int main() {
    return 42;
}
"""

# Instantiates the ES6 module a wasm build gives, from the .wasm beside it (the module
# would fetch() it in a browser), and prints what its exports answer.
RUN_MODULE = """
import fs from 'node:fs';
const factory = (await import(process.argv[2])).default;
const options = process.argv[3] ? { wasmBinary: fs.readFileSync(process.argv[3]) } : {};
const M = await factory(options);
const out = [M._add(2, 3), M._main(), typeof M._hidden];
try { M._trigger_trap(); out.push('no trap'); } catch (e) { out.push(e.constructor.name); }
console.log(out.join(' '));
"""


def request(target: str, files: dict[str, bytes], **options: object) -> CompileRequest:
    sources = tuple(SourceFile(name, data) for name, data in files.items())
    return CompileRequest("c", target, sources, Options.parse(options))


def node(cwd: Path, *args: str) -> str:
    (cwd / "run.mjs").write_text(RUN_MODULE)
    done = subprocess.run(
        ["node", *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize(
    ("text", "chosen"),
    [
        (b"#include <emscripten.h>\nint f(void) { return 1; }\n", True),
        (b'  #  include "emscripten.h"\n', True),
        (b"#include <emscripten/html5.h>\n", True),
        (b"// #include <emscripten.h> in a comment\nint f(void) { return 1; }\n", False),
        (b"#include <stdio.h>\nint f(void) { return 1; }\n", False),
    ],
)
def test_sources_that_include_emscripten_headers_choose_emcc(text: bytes, chosen: bool) -> None:
    built = request("wasm", {"x.c": text})
    assert wants(built) is chosen
    assert driver_for_request(built).id == ("emscripten" if chosen else "c")


def test_the_option_overrides_what_the_sources_say() -> None:
    plain = {"x.c": b"int f(void) { return 1; }\n"}
    assert driver_for_request(request("wasm", plain, emscripten=True)).id == "emscripten"
    with_header = {"x.c": b"#include <emscripten.h>\n"}
    assert driver_for_request(request("wasm", with_header, emscripten="no")).id == "c"


def test_the_option_is_for_c_only() -> None:
    rust = CompileRequest(
        "rust", "wasm", (SourceFile("lib.rs", b""),), Options.parse({"emscripten": True})
    )
    with pytest.raises(InvalidOption, match="Emscripten builds C only, not rust"):
        driver_for_request(rust)


def test_wasm_argv_is_the_original_web_build() -> None:
    plan = EmscriptenDriver().plan(request("wasm", {"c/c_trap.c": TRAP}, opt_level="0"))
    (step,) = plan.steps
    assert step.describe() == (
        "emcc",
        "-O0",
        "-sMODULARIZE",
        "-sEXPORT_ES6",
        "-sENVIRONMENT=web",
        "-sINVOKE_RUN=0",
        "-o",
        "out/c_trap.js",
        "-x",
        "c",
        "c/c_trap.c",
    )
    assert [(o.path, o.kind) for o in plan.outputs] == [
        ("out/c_trap.js", "js"),
        ("out/c_trap.wasm", "wasm"),
    ]


def test_asm_argv_has_no_wasm_and_one_file() -> None:
    plan = EmscriptenDriver().plan(request("asm", {"c_trap.c": TRAP}))
    argv = plan.steps[0].describe()
    assert ("-sWASM=0", "--memory-init-file", "0") == argv[6:9]
    assert [o.path for o in plan.outputs] == ["out/c_trap_asm.js"]


def test_names_and_exports_reach_argv_only_checked() -> None:
    for name in ("-sWASM=0.c", "@flags.c", "c/-o.c"):
        with pytest.raises(RequestError, match="starts with"):
            request("wasm", {name: TRAP})
    plan = EmscriptenDriver().plan(request("wasm", {"a.c": TRAP, "b.c": TRAP}, exports="add"))
    argv = plan.steps[0].describe()
    assert argv[-4:] == ("-x", "c", "a.c", "b.c")
    assert "-sEXPORTED_FUNCTIONS=_add" in argv
    with pytest.raises(InvalidOption, match="is not a symbol name"):
        request("wasm", {"x.c": TRAP}, exports="_add,-sWASM=0")


@pytest.mark.parametrize(
    "options",
    [
        {"s": "EXPORT_NAME='x'"},  # emcc settings have no option of their own
        {"settings": {"NODE_JS": "/bin/sh"}},
        {"js_library": "evil.js"},
        {"pre_js": "evil.js"},
        {"emscripten": "--pre-js=evil.js"},
        {"opt_level": "2 --js-library evil.js"},
        {"exports": "add,x\"];require('child_process')//"},
        {"exports": ["add", "-sEXPORT_NAME='x'"]},
    ],
)
def test_no_request_option_can_carry_emcc_settings(options: dict[str, object]) -> None:
    with pytest.raises(InvalidOption):
        request("wasm", {"x.c": TRAP}, **options)


def test_parallel_and_passes_are_refused_where_they_cannot_apply() -> None:
    with pytest.raises(InvalidOption, match="no OpenMP runtime"):
        EmscriptenDriver().plan(request("wasm", {"x.c": TRAP}, parallel=True))
    with pytest.raises(InvalidOption, match="target 'llvm' only"):
        EmscriptenDriver().plan(request("asm", {"x.c": TRAP}, passes="mem2reg"))


def test_wasm_module_runs_in_node(settings: Settings, tmp_path: Path) -> None:
    result = compile_files(settings, "c", "wasm", {"c/c_trap.c": TRAP})
    files = outputs(result)
    assert set(files) == {"c_trap.js", "c_trap.wasm"}
    assert result.note is not None and "ES6 module" in result.note
    for name, path in files.items():
        shutil.copyfile(path, tmp_path / name)
    # add, main (exported, not run on load), a function without KEEPALIVE is not
    # exported, and __builtin_trap is wasm's unreachable.
    said = node(tmp_path, "run.mjs", "./c_trap.js", "c_trap.wasm")
    assert said == "5 42 undefined RuntimeError"


def test_asm_module_runs_without_webassembly(settings: Settings, tmp_path: Path) -> None:
    result = compile_files(settings, "c", "asm", {"c_trap.c": TRAP}, opt_level="1")
    shutil.copyfile(outputs(result)["c_trap_asm.js"], tmp_path / "c_trap_asm.js")
    said = node(tmp_path, "--jitless", "run.mjs", "./c_trap_asm.js")
    assert said.split()[:3] == ["5", "42", "undefined"]


def test_llvm_ir_is_emscripten_wasm32(settings: Settings, tmp_path: Path) -> None:
    two = {"a.c": TRAP, "b.c": b"int twice(int x) { return 2 * x; }\n"}
    for files in ({"a.c": TRAP}, two):
        result = compile_files(settings, "c", "llvm", files, passes="mem2reg")
        text = outputs(result)["a.ll"].read_text()
        assert 'target triple = "wasm32-unknown-emscripten"' in text
        assert "@add" in text
    assert "@twice" in text
    llvm_as = subprocess.run(
        ["llvm-as-14", "-o", os.devnull, str(outputs(result)["a.ll"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert llvm_as.returncode == 0, llvm_as.stderr


def test_a_compile_error_is_emccs_diagnostic(settings: Settings) -> None:
    with pytest.raises(CompileFailed) as caught:
        compile_files(settings, "c", "wasm", {"c/bad.c": b"#include <emscripten.h>\nint f( {\n"})
    assert any(d.file == "c/bad.c" and d.line == 2 for d in caught.value.diagnostics)


def test_emcc_leaves_its_cache_as_it_was(settings: Settings) -> None:
    cache = Path("/usr/share/emscripten/cache")
    before = sorted((p, p.stat().st_mtime_ns) for p in cache.rglob("*") if p.is_file())
    compile_files(settings, "c", "wasm", {"fresh.c": TRAP + b"int fresh(void) { return 7; }\n"})
    after = sorted((p, p.stat().st_mtime_ns) for p in cache.rglob("*") if p.is_file())
    assert after == before
