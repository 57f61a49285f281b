"""Hostile object and module bytes: the reader reports a clean CompileFailed, never crashes."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pf.errors import CompileFailed
from pf.toolchains import wasmobj
from tests.toolchains.test_wasmobj import LIB, compile_object

MAGIC = b"\x00asm\x01\x00\x00\x00"


def _linking(payload: bytes) -> bytes:
    """A module holding one custom "linking" section with ``payload`` after its name."""
    body = bytes([7]) + b"linking" + payload
    return MAGIC + bytes([0]) + wasmobj.encode_uleb(len(body)) + body


@pytest.fixture(scope="module")
def obj(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("hostile")
    return compile_object(tmp, "/usr/bin/clang-14", "lib", LIB, "wasm32-wasi").read_bytes()


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    tmp = tmp_path_factory.mktemp("hostile-module")
    (tmp / "m.wat").write_text('(module (func (export "a") (result i32) i32.const 1))')
    subprocess.run(["wat2wasm", str(tmp / "m.wat"), "-o", str(tmp / "m.wasm")], check=True)
    return (tmp / "m.wasm").read_bytes()


def _survives(parse: Callable[[], object]) -> None:
    try:
        parse()
    except CompileFailed:
        pass  # a clean failure is fine; any other exception fails the test


@pytest.mark.parametrize(
    "data",
    [
        # A symbol-table subsection claiming more bytes than the section holds.
        _linking(b"\x02\x08\x7f\x01"),
        # A symbol table whose count runs past its data.
        _linking(b"\x02\x08\x03\x05\x00\x00\x00"),
        # A name length past the end.
        _linking(b"\x02\x08\x04\x01\x00\x00\x00\x7f"),
        # A LEB128 that never ends.
        _linking(b"\x02\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80"),
        # A section size past the end of the file.
        MAGIC + b"\x00\xff\xff\x03linking",
        # An unknown linking version.
        _linking(b"\x09"),
        b"",
        MAGIC[:5],
    ],
)
def test_crafted_objects_fail_cleanly(data: bytes) -> None:
    with pytest.raises(CompileFailed):
        wasmobj.read_symbols(data)


def test_every_truncation_of_a_real_object_fails_cleanly_or_parses(obj: bytes) -> None:
    for end in range(len(obj)):
        _survives(lambda end=end: wasmobj.read_symbols(obj[:end]))  # type: ignore[misc]


def test_random_corruption_of_a_real_object_never_crashes(obj: bytes) -> None:
    rng = random.Random(1)
    for _ in range(3000):
        data = bytearray(obj)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(MAGIC), len(data))] = rng.randrange(256)
        _survives(lambda data=data: wasmobj.read_symbols(bytes(data)))  # type: ignore[misc]


def test_hostile_modules_fail_cleanly_when_narrowed(module: bytes) -> None:
    rng = random.Random(2)
    for end in range(len(module)):
        _survives(lambda end=end: wasmobj.narrow_exports(module[:end], ["a"]))  # type: ignore[misc]
    for _ in range(2000):
        data = bytearray(module)
        data[rng.randrange(len(MAGIC), len(data))] = rng.randrange(256)
        _survives(lambda data=data: wasmobj.narrow_exports(bytes(data), ["a"]))  # type: ignore[misc]


def test_a_garbage_object_in_a_link_is_a_compile_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "obj").mkdir()
    (tmp_path / "obj/0_a.o").write_bytes(_linking(b"\x02\x08\x7f\x01"))
    with pytest.raises(CompileFailed, match=r"cannot read the compiled object 0_a\.o"):
        wasmobj.write_export_file(tmp_path, ["obj/0_a.o"], None)
    assert not (tmp_path / "obj/exports.rsp").exists()
