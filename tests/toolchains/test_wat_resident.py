"""WAT assembled by the resident assembler (wabt built to wasm) through the engine.

The same modules, assembled by it and by the system's wat2wasm (PF_WAT_ASSEMBLER), give
the same bytes; the assembler runs confined in a process of its own, kept for many
modules; what it says about a bad module reaches the user as wat2wasm's would; a module
that takes too long to assemble is stopped, and the next one is assembled.
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import pytest

from pf.config import Settings
from pf.engine import compile_sources
from pf.errors import BuildTimeout, CompileFailed
from pf.toolchains import CompileRequest
from pf.toolchains.tools import WABT_WASM
from tests.toolchains.support import compile_files, unchecked
from tests.tools import needs_tool

pytestmark = needs_tool(WABT_WASM.candidates[0], "wat2wasm", "bwrap")

DEMOS = Path(__file__).parents[2] / "demos"
MODULES = sorted(DEMOS.rglob("*.wat"))


def _assembled(settings: Settings, name: str, text: bytes, **options: object) -> bytes:
    (artifact,) = compile_files(settings, "wat", "wasm", {name: text}, **options).artifacts
    return artifact.read_bytes()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(DEMOS)))
@pytest.mark.parametrize("debug", [False, True])
def test_both_assemblers_give_the_same_module(settings: Settings, path: Path, debug: bool) -> None:
    native = dataclasses.replace(settings, wat_assembler="wat2wasm")
    text = path.read_bytes()
    assert _assembled(settings, path.name, text, debug=debug) == _assembled(
        native, path.name, text, debug=debug
    )


def test_each_assembler_has_its_own_cache_entries(settings: Settings) -> None:
    text = b'(module (func (export "k") (result i32) i32.const 424242))'
    resident = compile_files(settings, "wat", "wasm", {"k.wat": text})
    native = compile_files(
        dataclasses.replace(settings, wat_assembler="wat2wasm"), "wat", "wasm", {"k.wat": text}
    )
    assert resident.key != native.key and not native.cached
    assert {t.name for t in resident.tools} == {"wabt-wasm"}
    assert {t.name for t in native.tools} == {"wat2wasm"}


def _residents() -> list[int]:
    """This process's resident assemblers: the Python the launcher starts, below us."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            if b"pf.toolchains.wabt" in argv and b"bwrap" not in argv[0]:
                if os.getpid() in _ancestors(int(entry.name)):
                    found.append(int(entry.name))
        except OSError:
            continue  # it ended meanwhile
    return found


def _ancestors(pid: int) -> set[int]:
    seen = set()
    while pid > 1:
        seen.add(pid)
        stat = (Path("/proc") / str(pid) / "stat").read_text()
        pid = int(stat.rpartition(")")[2].split()[1])
    return seen


def _uid(pid: int) -> int:
    status = (Path("/proc") / str(pid) / "status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox uid needs pf to run as root")
def test_the_assembler_runs_confined_and_stays_for_many_modules(settings: Settings) -> None:
    # A sandbox uid of this test's own: the residents other tests of this process keep
    # (some with the sandbox off) are told apart from the one this test starts.
    uid = 3_200_000 + os.getpid() % 100_000
    lone = dataclasses.replace(settings, sandbox_uid=uid)
    for n in range(3):
        _assembled(lone, "m.wat", f"(module (global i32 (i32.const {uid + n})))".encode())
    residents = [pid for pid in _residents() if _uid(pid) == uid]
    assert residents, "no resident assembler as the sandbox's uid below this process"
    for pid in residents:
        assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
        assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    _assembled(lone, "m.wat", f"(module (global i32 (i32.const {uid + 99})))".encode())
    after = [pid for pid in _residents() if _uid(pid) == uid]
    assert set(residents) & set(after), "a new process was started for one more module"


def test_a_hostile_file_name_is_only_a_name(settings: Settings) -> None:
    # Names a wat2wasm command line would read as options or a response file, past the
    # name rule that refuses them: the assembler takes no command line at all.
    for name in ("--debug-names.wat", "-o.wat", "@args.wat"):
        request = CompileRequest("wat", "wasm", (unchecked(name, b"(module (func i32.add))"),))
        with pytest.raises(CompileFailed) as caught:
            compile_sources(request, settings)
        (diagnostic,) = caught.value.diagnostics[:1]
        assert diagnostic.file == name and diagnostic.line == 1


def test_the_errors_are_wabts_with_line_and_column(settings: Settings) -> None:
    bad = b'(module\n  (func (export "f") (result i32)\n    i64.const 1))\n'
    with pytest.raises(CompileFailed) as caught:
        _assembled(settings, "t.wat", bad)
    failure = caught.value
    assert "rejected t.wat" in failure.message
    assert [(d.file, d.line, d.col) for d in failure.diagnostics] == [("t.wat", 3, 5)]
    assert "type mismatch" in failure.diagnostics[0].message
    assert failure.log is not None and "i64.const 1" in failure.log


def test_an_assembly_past_the_time_limit_is_stopped_and_the_next_one_runs(
    settings: Settings,
) -> None:
    # 200,000 functions: about 0.5 s of assembly on a fast machine, ten times the limit.
    body = "".join(f"(func $f{n} (result i32) i32.const {n})\n" for n in range(200_000))
    hasty = dataclasses.replace(settings, build_timeout=0.05)
    _assembled(hasty, "warm.wat", b"(module)")  # the resident's start is not what is timed
    with pytest.raises(BuildTimeout):
        _assembled(hasty, "big.wat", f"(module\n{body})".encode())
    assert _assembled(hasty, "small.wat", b"(module)") == b"\0asm\1\0\0\0"


def test_a_module_is_assembled_without_a_scratch_folder(tmp_path: Path, settings: Settings) -> None:
    # Its source goes to the resident and its wasm comes back as bytes, straight into
    # the store: nothing is made (or removed) where scratch folders go. The control:
    # wat2wasm, a process, needs a folder there (with the sandbox off: a confined one
    # gets its folder from the sandbox).
    scratch = tmp_path / "scratch"
    own = dataclasses.replace(settings, cache_dir=tmp_path / "cache", scratch_dir=scratch)
    compile_files(own, "wat", "wasm", {"warm.wat": b"(module)"})
    time.sleep(0.05)  # past the clock tick of the folder's last change
    before = scratch.stat().st_mtime_ns
    text = b'(module (func (export "f") (result i32) i32.const 7070))'
    result = compile_files(own, "wat", "wasm", {"f.wat": text})
    assert not result.cached
    assert result.artifacts[0].read_bytes().startswith(b"\0asm")
    assert scratch.stat().st_mtime_ns == before
    native = dataclasses.replace(own, wat_assembler="wat2wasm", sandbox="off")
    compile_files(native, "wat", "wasm", {"f.wat": text})
    assert scratch.stat().st_mtime_ns != before
