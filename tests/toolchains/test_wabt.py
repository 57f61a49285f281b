"""The WAT assembler (pf.toolchains.wabt): npm's wabt 1.0.39 as WebAssembly in wasmtime,
measured against Debian's wat2wasm 1.0.32, the tool it replaces."""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pf.toolchains.assembly import (
    Assembled,
    ProtocolError,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
    frame,
)
from pf.toolchains.wabt import SHARE_DIR, Assembler
from tests.tools import needs_tool

ROOT = Path(__file__).resolve().parents[2]
CASES = Path(__file__).parent / "cases" / "wabt"
WASM = SHARE_DIR / "wabt.wasm"
EXPORTS = SHARE_DIR / "exports.json"
LIMIT = 256 * 1024 * 1024

pytestmark = needs_tool("/usr/bin/wat2wasm", str(WASM), install="scripts/setup.sh")

FAILING = {"parse_error.wat", "type_error.wat"}
CORPUS = sorted(
    p
    for p in [*(ROOT / "demos").rglob("*.wat"), *(ROOT / "tests").rglob("*.wat")]
    if p.name not in FAILING and "node_modules" not in p.parts
)


@pytest.fixture(scope="module")
def assembler() -> Assembler:
    return Assembler(WASM, EXPORTS)


def wat2wasm(path: Path, tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[bytes]:
    """Debian's wat2wasm on ``path``, run where it lies so messages name the file alone."""
    out = tmp_path / "out.wasm"
    return subprocess.run(
        ["/usr/bin/wat2wasm", *flags, "-o", str(out), "--", path.name],
        cwd=path.parent,
        capture_output=True,
        check=False,
    )


def assemble(assembler: Assembler, source: bytes, name: str, debug: bool = False) -> Assembled:
    return assembler.assemble(source, name, debug_names=debug, memory_limit=LIMIT)


def test_corpus_holds_the_repositorys_modules_and_the_feature_cases() -> None:
    names = {p.name for p in CORPUS}
    assert {"add.wat", "mini.wat", "simd.wat", "bulk.wat", "reftypes.wat"} <= names
    assert {"multivalue.wat", "segments.wat", "names.wat", "numbers.wat"} <= names


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug-names"])
@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(ROOT)))
def test_output_is_byte_identical_to_wat2wasm(
    assembler: Assembler, path: Path, debug: bool, tmp_path: Path
) -> None:
    flags = ("--debug-names",) if debug else ()
    done = wat2wasm(path, tmp_path, *flags)
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    got = assemble(assembler, path.read_bytes(), path.name, debug)
    assert (got.errors, got.trap) == ("", None)
    assert got.wasm == (tmp_path / "out.wasm").read_bytes()


def test_debug_names_add_a_name_section(assembler: Assembler) -> None:
    source = (CASES / "names.wat").read_bytes()
    plain = assemble(assembler, source, "names.wat").wasm
    named = assemble(assembler, source, "names.wat", debug=True).wasm
    assert plain is not None and named is not None
    assert b"\x04name" not in plain and b"\x04name" in named


@pytest.mark.parametrize("name", sorted(FAILING))
def test_diagnostics_are_wat2wasms_text(assembler: Assembler, name: str, tmp_path: Path) -> None:
    path = CASES / name
    done = wat2wasm(path, tmp_path)
    assert done.returncode == 1
    got = assemble(assembler, path.read_bytes(), name)
    assert got.wasm is None and got.trap is None
    assert re.match(rf"{re.escape(name)}:\d+:\d+: error: ", got.errors)
    assert got.errors == done.stderr.decode()


def test_every_error_is_reported_as_wat2wasm_does(assembler: Assembler, tmp_path: Path) -> None:
    source = b"(module\n  (func (result i32) i32.const))\n(foo)\n"
    path = tmp_path / "two.wat"
    path.write_bytes(source)
    done = wat2wasm(path, tmp_path)
    got = assemble(assembler, source, "two.wat")
    assert got.errors.count(": error: ") == 2
    assert got.errors == done.stderr.decode()


def nested(depth: int) -> bytes:
    return b"(module (func " + b"(block " * depth + b")" * depth + b"))"


def many_nops(count: int) -> bytes:
    return b"(module (func " + b"nop\n" * count + b"))"


def test_a_failed_or_trapped_compile_leaves_nothing_behind(assembler: Assembler) -> None:
    source = (CASES / "bulk.wat").read_bytes()
    before = assemble(assembler, source, "bulk.wat", debug=True)
    hostile = [
        assemble(assembler, nested(200_000), "deep.wat"),
        assembler.assemble(
            many_nops(3_000_000), "big.wat", debug_names=False, memory_limit=32 << 20
        ),
        assemble(assembler, (CASES / "type_error.wat").read_bytes(), "type_error.wat"),
    ]
    assert [h.wasm for h in hostile] == [None, None, None]
    assert hostile[0].trap is not None and hostile[1].trap is not None
    after = assemble(assembler, source, "bulk.wat", debug=True)
    fresh = assemble(Assembler(WASM, EXPORTS), source, "bulk.wat", debug=True)
    assert before.wasm is not None
    assert before == after == fresh


def test_deep_nesting_traps_with_a_message(assembler: Assembler) -> None:
    got = assemble(assembler, nested(200_000), "deep.wat")
    assert got.wasm is None and got.errors == ""
    assert got.trap is not None and "nests too deeply" in got.trap


def test_the_memory_limit_traps_and_the_next_compile_works(assembler: Assembler) -> None:
    limit = 32 << 20
    got = assembler.assemble(many_nops(3_000_000), "big.wat", debug_names=False, memory_limit=limit)
    assert got == Assembled(
        None, "", f"the assembler ran out of memory: a compile may use at most {limit} bytes"
    )
    small = assembler.assemble(b"(module)", "m.wat", debug_names=False, memory_limit=limit)
    assert small.wasm == b"\0asm\1\0\0\0"


def test_a_limit_below_wabts_own_memory_is_a_trap_not_a_crash(assembler: Assembler) -> None:
    got = assembler.assemble(b"(module)", "m.wat", debug_names=False, memory_limit=1 << 20)
    assert got.wasm is None and got.trap is not None
    assert "below the" in got.trap


def test_a_name_with_a_nul_is_refused(assembler: Assembler) -> None:
    with pytest.raises(ValueError, match="NUL"):
        assemble(assembler, b"(module)", "a\0b.wat")


def test_requests_and_replies_round_trip() -> None:
    request = decode_request(encode_request(b"(module)\xff", "é.wat", True, 1 << 26))
    assert (request.source, request.name, request.debug_names, request.memory_limit) == (
        b"(module)\xff",
        "é.wat",
        True,
        1 << 26,
    )
    for reply in (
        Assembled(b"\0asm\1\0\0\0", ""),
        Assembled(b"", ""),
        Assembled(None, "x.wat:1:1: error: no\n"),
        Assembled(None, "", "the assembler trapped: x"),
    ):
        assert decode_reply(encode_reply(reply)) == reply


def meta_payload(meta: bytes, data: bytes = b"") -> bytes:
    return struct.pack(">I", len(meta)) + meta + data


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"\0\0\0",
        struct.pack(">I", 50) + b"{}",
        meta_payload(b"{not json"),
        meta_payload(b"\xff\xfe"),
        meta_payload(b"[1]"),
        meta_payload(b'{"name": 1, "debug_names": false, "memory_limit": 1}'),
        meta_payload(b'{"name": "a\\u0000", "debug_names": false, "memory_limit": 1}'),
        meta_payload(b'{"name": "a", "debug_names": 1, "memory_limit": 1}'),
        meta_payload(b'{"name": "a", "debug_names": false, "memory_limit": true}'),
        meta_payload(b'{"name": "a", "debug_names": false, "memory_limit": -1}'),
    ],
)
def test_a_malformed_request_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_request(bad)


def test_a_malformed_reply_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="says it failed"):
        decode_reply(meta_payload(b'{"ok": false, "errors": "", "trap": null}', b"\0asm"))
    with pytest.raises(ProtocolError, match="'trap'"):
        decode_reply(meta_payload(b'{"ok": false, "errors": "", "trap": 3}'))


def serve() -> subprocess.Popen[bytes]:
    """The resident process; used in a with block, which closes its pipes and waits."""
    return subprocess.Popen(
        [sys.executable, "-I", "-B", "-m", "pf.toolchains.wabt"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def exchange(process: subprocess.Popen[bytes], request: bytes) -> Assembled:
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(frame(request))
    process.stdin.flush()
    prefix = process.stdout.read(4)
    return decode_reply(process.stdout.read(struct.unpack(">I", prefix)[0]))


def test_version_puts_wabts_version_first() -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-B", "-m", "pf.toolchains.wabt", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert re.fullmatch(r"wabt 1\.0\.39 \(WebAssembly, wasmtime \d+\.\d+\.\d+\)\n", done.stdout)
    assert re.search(r"\d+\.\d+\.\d+", done.stdout)[0] == "1.0.39"  # type: ignore[index]


def test_the_served_process_answers_frames_until_end_of_input(assembler: Assembler) -> None:
    with serve() as process:
        sources = [(CASES / n).read_bytes() for n in ("simd.wat", "type_error.wat", "simd.wat")]
        names = ["simd.wat", "type_error.wat", "simd.wat"]
        replies = [
            exchange(process, encode_request(s, n, True, LIMIT))
            for s, n in zip(sources, names, strict=True)
        ]
        assert process.stdin is not None
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    expected = [assemble(assembler, s, n, debug=True) for s, n in zip(sources, names, strict=True)]
    assert replies == expected
    assert replies[0].wasm is not None and "type mismatch" in replies[1].errors


def test_a_garbage_frame_ends_the_served_process_with_a_message() -> None:
    with serve() as process:
        assert exchange(process, encode_request(b"(module)", "m.wat", False, LIMIT)).wasm
        _, stderr = process.communicate(frame(meta_payload(b"{not json")), timeout=30)
    assert process.returncode == 1
    message = stderr.decode()
    assert message.startswith("pf.toolchains.wabt: the request frame's metadata is not JSON")
    assert message.count("\n") == 1 and "Traceback" not in message
