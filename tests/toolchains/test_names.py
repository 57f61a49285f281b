"""Source file names: one rule, refused with the rule named; good names compile for real."""

from __future__ import annotations

import subprocess
import unicodedata
from pathlib import Path

import pytest

from pf.config import Settings
from pf.errors import InvalidOption, RequestError
from pf.toolchains import Options, SourceFile
from pf.toolchains.base import PASSES
from pf.toolchains.names import MAX_DEPTH, MAX_NAME_BYTES, is_symbol
from tests.toolchains.support import compile_files, instantiate, outputs
from tests.tools import needs_tool

NFD = unicodedata.normalize("NFD", "caf\u00e9.c")
LONG_PART = "x" * 254 + ".c"  # 256 bytes

BAD_NAMES = [
    ("@x", "starts with '@'"),
    ("@x.c", "starts with '@'"),
    ("-MFx.c", "starts with '-'"),
    ("--emit=x", "starts with '-'"),
    ("dir/-o.c", "starts with '-'"),
    ("a/../b.c", "'..' path segment"),
    ("./a.c", "'.' path segment"),
    ("..", "'..' path segment"),
    ("a//b.c", "empty path segment"),
    ("a/", "empty path segment"),
    ("", "empty"),
    ("/abs.c", "absolute"),
    (NFD, "not in Unicode NFC"),
    ("a\x01.c", "control character"),
    ("a\x00.c", "control character"),
    ("a\x7f.c", "control character"),
    ("a\x85.c", "control character"),
    ("a\nb.c", "control character"),
    ("a\u2028b.c", "line separator"),
    ("a\u202eb.c", "bidirectional"),
    ("a\\b.c", "backslash"),
    (LONG_PART, "256 bytes long"),
    ("\u00e9" * 128 + ".c", "258 bytes long"),
    ("a\ud800.c", "lone surrogate"),
    ("\udcff", "lone surrogate"),
    ("obj/x.c", "obj/ is where pf writes"),
    ("out/x.c", "out/ is where pf writes"),
    ("obj", "obj/ is where pf writes"),
    ("/".join(["d"] * MAX_DEPTH + ["x.c"]), "directories deep"),
    ("/".join(["d" * 200] * 6), f"the limit is {MAX_NAME_BYTES}"),
]


@pytest.mark.parametrize(("name", "rule"), BAD_NAMES)
def test_a_bad_name_is_refused_naming_the_rule_and_the_name(name: str, rule: str) -> None:
    with pytest.raises(RequestError) as caught:
        SourceFile(name, b"int x;\n")
    message = caught.value.message
    assert rule in message
    assert caught.value.http_status == 400
    shown = repr(name) if len(name) <= 60 else repr(name[:60])
    assert shown in message
    assert len(message) < 400  # a huge name is cut short in the message


@pytest.mark.parametrize(
    "name",
    ["a.c", "caf\u00e9.c", "src/lib/x.c", "\u65e5\u672c/\u8a9e.c", "x" * 253 + ".c", "a b.c"],
)
def test_good_names_are_accepted(name: str) -> None:
    assert SourceFile(name, b"").name == name


ADD_C = b"int add(int a, int b) { return a + b; }\n"


@pytest.mark.parametrize("target", ["wasm", "llvm", "asm"])
def test_unicode_nested_and_255_byte_names_compile_for_real(
    settings: Settings, target: str
) -> None:
    files = {
        "caf\u00e9/\u65e5\u672c/" + "x" * 253 + ".c": ADD_C,  # a 255-byte part
        "caf\u00e9/\u00fc.c": b"int twice(int a) { return a * 2; }\n",
    }
    built = outputs(compile_files(settings, "c", target, files))
    (artifact,) = built.values()
    assert len(artifact.name.encode()) <= 255
    if target == "wasm":
        store, exports = instantiate(artifact)
        assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]
        assert exports["twice"](store, 4) == 8  # type: ignore[operator]


@pytest.mark.parametrize(
    ("language", "suffix", "source"),
    [
        ("rust", "rs", b'#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 { a + b }\n'),
        (
            "fortran",
            "f90",
            b"function add(a, b) bind(C)\n  integer, value :: a, b\n  integer :: add\n"
            b"  add = a + b\nend function\n",
        ),
        (
            "wat",
            "wat",
            b'(module (func (export "add") (param i32 i32) (result i32)\n'
            b"  local.get 0 local.get 1 i32.add))\n",
        ),
    ],
)
def test_a_255_byte_name_compiles_in_every_language(
    settings: Settings, language: str, suffix: str, source: bytes
) -> None:
    name = "d\u00e9j\u00e0/" + "y" * (254 - len(suffix)) + "." + suffix
    built = outputs(compile_files(settings, language, "wasm", {name: source}))
    (artifact,) = built.values()
    store, exports = instantiate(artifact)
    assert exports["add"](store, 2, 3) == 5  # type: ignore[operator]


def test_the_api_name_rule_is_also_the_compile_request_rule(settings: Settings) -> None:
    with pytest.raises(RequestError, match="starts with '-'"):
        compile_files(settings, "c", "wasm", {"-MF/tmp/x.c": ADD_C})


# --- symbol names and the options that carry them ------------------------------------


@pytest.mark.parametrize("name", ["f", "_f", "F_1", "__original_main", "a" * 300])
def test_identifiers_are_symbols(name: str) -> None:
    assert is_symbol(name)


@pytest.mark.parametrize(
    "name", ["", "1f", "f\n", "-f", "@f", "f g", "f-g", "f.g", "f$g", "caf\u00e9", 'f"', "f\\"]
)
def test_other_strings_are_not_symbols(name: str) -> None:
    assert not is_symbol(name)


@pytest.mark.parametrize("value", ["f\n-o/x", "--export-all", "a b", ["ok", "@x"], ["x\ny"]])
def test_the_exports_option_takes_identifiers_only(value: object) -> None:
    with pytest.raises(InvalidOption, match="not a symbol name"):
        Options.parse({"exports": value})


@pytest.mark.parametrize(
    ("passes", "accepted"),
    [
        ("default<O2>", True),
        ("mem2reg,instcombine", True),
        ("function(sroa),globaldce", True),
        ("loop-unroll<full-unroll-max=4>", True),
        ("loop-unroll<O3;no-runtime>", True),
        ("function(loop-mssa(licm)),cgscc(inline)", True),
        ("print<domtree>", False),
        ("verify", False),
        ("aa-eval", False),
        ("insert-gcov-profiling", False),
        ("pgo-instr-gen", False),
        ("helloworld", False),
        ("function(sroa", False),
        ("-load=/tmp/x.so", False),
        ("mem2reg,-load-pass-plugin=x", False),
        ("default<O2> -o /etc/passwd", False),
        ("a/b", False),
        ("view-cfg", False),
        ("function(view-dom)", False),
        ("dot-cfg", False),
        ("print-lcg-dot", False),
        ("memprof-use<profile-filename=a.c>", False),
        (".hidden", False),
        ("", False),
    ],
)
def test_passes_are_allow_listed_transformations_only(passes: str, accepted: bool) -> None:
    if accepted:
        assert Options.parse({"passes": passes}).passes == passes
    else:
        with pytest.raises(InvalidOption, match="'passes'"):
            Options.parse({"passes": passes})


# Pipelines and adaptors take parameters or nested passes to run at all.
_RUNNABLE = {
    **{p: f"{p}<O2>" for p in ("default", "thinlto-pre-link", "thinlto", "lto-pre-link", "lto")},
    "module": "module(globaldce)",
    "cgscc": "cgscc(inline)",
    "function": "function(sroa)",
    "loop": "function(loop(licm))",
    "loop-mssa": "function(loop-mssa(licm))",
}


@needs_tool("opt-14")
def test_every_allow_listed_pass_is_one_llvm_runs(tmp_path: Path) -> None:
    module = tmp_path / "m.ll"
    module.write_text("define i32 @f(i32 %x) {\n  ret i32 %x\n}\n")
    refused = {}
    for name in sorted(PASSES):
        run = subprocess.run(
            ["opt-14", f"-passes={_RUNNABLE.get(name, name)}", "-S", "-o", "/dev/null", module],
            capture_output=True,
            text=True,
        )
        if run.returncode:
            refused[name] = run.stderr.strip()
    assert not refused
