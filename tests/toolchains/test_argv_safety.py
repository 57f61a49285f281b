"""Request strings never become tool flags: argv shapes, response files, exported names.

The attacks are the ones found against the drivers: a symbol named like a linker flag
reaching ``obj/exports.rsp`` unquoted, and source names read as flags or @files.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from pf.config import Settings
from pf.errors import CompileFailed
from pf.toolchains import CompileRequest, Options, Run, driver_for_request
from pf.toolchains.base import END_OF_OPTIONS, operand
from pf.toolchains.response import gnu_quote, write_gnu
from pf.toolchains.tools import WAT2WASM
from tests.toolchains.support import (
    compile_files,
    function_exports,
    instantiate,
    outputs,
    run_plan,
    unchecked,
)
from tests.tools import needs_tool

# Tools that end their options at "--" (each tried by hand: clang-14/19, rustc 1.63,
# wat2wasm, wasm2c, llvm-link and opt 14/19). flang-new-19, rust-lld and wasm2js refuse
# it; clang compiles through ccache take none either (ccache appends a flag after them).
TAKES_END_OF_OPTIONS = {
    "clang",
    "clang-19",
    "rustc",
    "wat2wasm",
    "wasm2c",
    "llvm-link",
    "llvm-link-19",
    "opt",
    "opt-19",
}

SUFFIX = {"c": "c", "rust": "rs", "fortran": "f90", "wat": "wat"}
SOURCE = {
    "c": b"int add(int a, int b) { return a + b; }\n",
    "rust": b'#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 { a + b }\n',
    "fortran": b"function add(a, b) bind(C)\n  integer, value :: a, b\n  integer :: add\n"
    b"  add = a + b\nend function\n",
    "wat": b'(module (func (export "add") (param i32 i32) (result i32)\n'
    b"  local.get 0 local.get 1 i32.add))\n",
}
HOSTILE = ("-MFevil", "@evil")
# emcc's own: a setting (with quotes), a JS file it would run at build time or in the
# module, and a library it would link in.
EMCC_HOSTILE = ("-sEXPORT_NAME='x'", "--pre-js=evil", "--js-library=evil")


def requests() -> list[tuple[str, CompileRequest]]:
    cases = []
    for language in ("c", "rust", "fortran", "wat"):
        ext = SUFFIX[language]
        for target in ("wasm", "llvm", "asm"):
            variants: list[dict[str, object]] = [{}, {"debug": True}]
            if target == "llvm":
                variants.append({"passes": "mem2reg"})
            if language == "c" and target == "llvm":
                variants.append({"parallel": True})
            for options in variants:
                for prefix in HOSTILE:
                    files = [unchecked(f"{prefix}.{ext}", SOURCE[language])]
                    if language in {"c", "fortran"}:
                        files.append(unchecked(f"{prefix}2.{ext}", b"\n"))
                    request = CompileRequest(language, target, tuple(files), Options.parse(options))
                    cases.append((f"{language}-{target}-{prefix}-{sorted(options)}", request))
    # C for Emscripten: emcc expands @files and reads -s settings from any operand.
    for target in ("wasm", "llvm", "asm"):
        for prefix in (*HOSTILE, *EMCC_HOSTILE):
            files = (unchecked(f"{prefix}.c", SOURCE["c"]), unchecked(f"{prefix}2.c", b"\n"))
            options = Options.parse({"emscripten": True, "exports": "add"})
            request = CompileRequest("c", target, files, options)
            cases.append((f"emscripten-{target}-{prefix}", request))
    return cases


CASES = requests()


@pytest.mark.parametrize("request_", [r for _, r in CASES], ids=[i for i, _ in CASES])
def test_no_operand_can_read_as_an_option_or_a_response_file(request_: CompileRequest) -> None:
    plan = driver_for_request(request_).plan(request_)
    # A resident assembler takes no argv; the same plan run by wat2wasm (PF_WAT_ASSEMBLER)
    # does, and is checked here.
    runs = [step for step in plan.assembled_by(WAT2WASM).steps if isinstance(step, Run)]
    assert runs
    for step in runs:
        tool, args = step.argv[0], step.argv[1:]
        for prefix in (*HOSTILE, *EMCC_HOSTILE):
            # A source name reaches argv only as ./name.
            assert not any(arg.startswith(prefix) for arg in args), step.argv
        # The only @file is pf's own, under obj/.
        assert all(arg.startswith("@obj/") for arg in args if arg.startswith("@")), step.argv
        if tool in TAKES_END_OF_OPTIONS and not step.ccache:
            assert END_OF_OPTIONS in args, step.argv
            after = args[args.index(END_OF_OPTIONS) + 1 :]
            assert after and not any(arg.startswith(("-", "@")) for arg in after), step.argv
            assert args.count(END_OF_OPTIONS) == 1
        else:
            assert END_OF_OPTIONS not in args, step.argv


def test_operand_keeps_plain_names_and_defuses_the_others() -> None:
    assert operand("a.c") == "a.c"
    assert operand("dir/-x.c") == "dir/-x.c"
    assert operand("-MFx.c") == "./-MFx.c"
    assert operand("@x.c") == "./@x.c"


@pytest.mark.parametrize("language", ["c", "rust", "fortran", "wat"])
@pytest.mark.parametrize("prefix", HOSTILE)
def test_the_tools_take_a_flag_like_source_name_as_a_file(
    settings: Settings, tmp_path: Path, language: str, prefix: str
) -> None:
    """Run with the real tools: even past the name rule, the name is just a file."""
    name = f"{prefix}.{SUFFIX[language]}"
    # What "@evil.x" would expand and "-MFevil.x" would overwrite.
    decoy = tmp_path / name[1:].removeprefix("MF")
    marker = tmp_path / "marker"
    decoy.write_text(f"-o{marker}\n")
    # Fortran's wasm route needs its prebuilt runtime, which only the engine places.
    target = "llvm" if language == "fortran" else "wasm"
    request = CompileRequest(language, target, (unchecked(name, SOURCE[language]),))
    plan = run_plan(request, settings, tmp_path)
    (output,) = plan.outputs
    if target == "wasm":
        store, exports = instantiate(tmp_path / output.path)
        assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]
    else:
        assert "@add(" in (tmp_path / output.path).read_text()
    assert decoy.read_text() == f"-o{marker}\n"
    assert not marker.exists()
    assert {p.name for p in tmp_path.iterdir()} == {name, decoy.name, "obj", "out"}


@needs_tool("emcc", "node")
@pytest.mark.parametrize("prefix", ["@evil", *EMCC_HOSTILE])
def test_emcc_takes_a_flag_like_source_name_as_a_file(
    settings: Settings, tmp_path: Path, prefix: str
) -> None:
    """Run with the real emcc: a name shaped as its setting, --pre-js, --js-library or
    @file is just a C file, and the files such an option would read are never read."""
    name = f"{prefix}.c"
    marker = tmp_path / "marker"
    # What "@evil" would expand, and "--pre-js=evil" / "--js-library=evil" would run.
    decoy = tmp_path / "evil"
    decoy.write_text(f"-o{marker}\n")
    (tmp_path / "evil.c").write_text(f"-o{marker}\n")
    request = CompileRequest(
        "c",
        "wasm",
        (unchecked(name, SOURCE["c"]),),
        Options.parse({"emscripten": True, "exports": "add"}),
    )
    plan = run_plan(request, settings, tmp_path)
    js, wasm = (tmp_path / output.path for output in plan.outputs)
    assert wasm.read_bytes()[:4] == b"\0asm"  # no -sWASM=0
    glue = js.read_text()
    assert "export default Module" in glue  # no EXPORT_NAME='x'
    assert str(marker) not in glue and "_add" in glue
    assert not marker.exists()
    assert {p.name for p in tmp_path.iterdir()} == {name, "evil", "evil.c", "obj", "out"}


# --- response files -------------------------------------------------------------------

WORDS = [
    "a b",
    'q"uote',
    "s'ingle",
    "back\\slash",
    "trail\\",
    "nl\nx",
    "tab\tx",
    "#hash",
    "@file",
    "-o",
    "",
    "$HOME",
]


def test_every_word_of_a_response_file_reaches_clang_as_one_argument(tmp_path: Path) -> None:
    rsp = tmp_path / "t.rsp"
    write_gnu(rsp, [f"-DW{i}={word}" for i, word in enumerate(WORDS)])
    shown = subprocess.run(
        ["/usr/bin/clang-14", "-###", "-fsyntax-only", "-x", "c", "/dev/null", f"@{rsp}"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    # -### prints each cc1 argument double-quoted, escaping '\', '"' and '$'.
    start = shown.rindex("\n", 0, shown.index('"-cc1"')) + 1
    args = [arg.replace("\\$", "$") for arg in shlex.split(shown[start:])]
    defined = [args[i + 1] for i, arg in enumerate(args) if arg == "-D"]
    assert defined == [f"W{i}={word}" for i, word in enumerate(WORDS)]


def test_gnu_quote_escapes_only_what_the_tokenizer_reads() -> None:
    assert gnu_quote("-Wl,--export=f") == '"-Wl,--export=f"'
    assert gnu_quote('a"b\\c') == '"a\\"b\\\\c"'


# --- symbols named like flags ---------------------------------------------------------


def _labels(marker: Path) -> list[str]:
    return [
        "--whatever",
        f"-o{marker}",
        f"@{marker}",
        f"x -Wl,--reproduce={marker}",
        f'x" "-o{marker}',
        f"x\n-o{marker}",
        f"x\\ -Wl,--reproduce={marker}",
        f"-plugin={marker}",
        f"-fuse-ld={marker}",
        "-Wl,--export-all",
    ]


def _c_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fortran_string(text: str) -> str:
    return '"' + text.replace('"', '""').replace("\n", '"//achar(10)//"') + '"'


def _source(language: str, label: str) -> tuple[str, bytes]:
    if language == "c":
        text = f'int f(void) __asm__("{_c_string(label)}");\nint f(void) {{ return 1; }}\n'
        return "a.c", text.encode()
    if language == "rust":
        text = f'#[export_name = "{_c_string(label)}"]\npub extern "C" fn f() -> i32 {{ 1 }}\n'
        return "a.rs", text.encode()
    text = (
        f"function f() bind(C, name={_fortran_string(label)})\n"
        "  integer :: f\n  f = 1\nend function\n"
    )
    return "a.f90", text.encode()


@pytest.mark.parametrize("target", ["wasm", "asm"])
@pytest.mark.parametrize("language", ["c", "rust", "fortran"])
def test_a_symbol_named_like_a_flag_is_refused_and_never_obeyed(
    settings: Settings, tmp_path: Path, language: str, target: str
) -> None:
    marker = tmp_path / "marker"
    # Something an @file attack could name: flags that would write the marker.
    marker.with_suffix(".rsp").write_text(f"-o{marker}\n")
    for label in _labels(marker):
        name, source = _source(language, label)
        with pytest.raises(CompileFailed) as caught:
            compile_files(settings, language, target, {name: source})
        message = caught.value.message
        if language == "fortran":
            # flang refuses a BIND(C) label that is not a C identifier before pf can.
            assert "not a valid C language identifier" in caught.value.log
        else:
            assert message.startswith(f"cannot export {label[:60]!r}"), message
            assert "identifier" in message
        assert not marker.exists(), label


def test_an_odd_symbol_is_fine_when_the_exports_option_leaves_it_out(settings: Settings) -> None:
    source = b'int f(void) __asm__("odd name");\nint f(void) { return 1; }\n' + SOURCE["c"]
    built = outputs(compile_files(settings, "c", "wasm", {"a.c": source}, exports="add"))
    assert function_exports(built["a.wasm"]) == {"add", "_initialize"}
