"""pf serve's build process: a compile there is the compile here, and what ends it.

Real compiles in a real child process. Compiles that must stay running (to be
cancelled, held back, or lose their process) run a wat2wasm wrapper that hangs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pickle
import shutil
import signal
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest

from pf.config import Settings, load_settings
from pf.engine.buildproc import (
    NICENESS,
    BuildProcess,
    BuildProcessLost,
    Unstarted,
    _Child,
    _Forward,
    _Sender,
)
from pf.engine.compile import BuildResult, compile_sources, lookup, prepare
from pf.errors import (
    BuildCancelled,
    BuildTimeout,
    CompileFailed,
    Diagnostic,
    InvalidOption,
    PfError,
    QueueFull,
    SandboxUnavailable,
    ToolchainMissing,
)
from pf.toolchains import DRIVERS, CompileRequest, Options, SourceFile, get_driver
from tests.engine.service_harness import Wrapper, install_wrapper, process_gone, wat

WAIT = 60.0  # seconds a compile handed over may take to end on a loaded machine


def _request(source: str, name: str = "m.wat") -> CompileRequest:
    return CompileRequest("wat", "wasm", (SourceFile(name, source.encode()),))


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("PF_CACHE_DIR", str(tmp_path / "cache"))
    return load_settings()


@pytest.fixture
def process(settings: Settings) -> Iterator[BuildProcess]:
    built = BuildProcess(settings)
    yield built
    built.close()


def _compile_in_thread(
    process: BuildProcess, request: CompileRequest, **keywords: Any
) -> tuple[threading.Thread, list[object]]:
    """Hand ``request`` over now (``process.begin``); the list gets its result or error
    once it ended, when the thread returned ends."""
    outcome: list[object] = []
    ended = threading.Event()

    def on_end(result: BuildResult | None, error: BaseException | None) -> None:
        outcome.append(result if error is None else error)
        ended.set()

    try:
        process.begin(request, on_end, **keywords)
    except BaseException as error:
        on_end(None, error)
    thread = threading.Thread(target=ended.wait, args=(WAIT,))
    thread.start()
    return thread, outcome


def _compile(process: BuildProcess, request: CompileRequest, **keywords: Any) -> BuildResult:
    """``process.begin``, then its result (or its error raised) once it ended."""
    thread, outcome = _compile_in_thread(process, request, **keywords)
    thread.join()
    (ended,) = outcome
    if isinstance(ended, BaseException):
        raise ended
    assert isinstance(ended, BuildResult)
    return ended


@pytest.fixture
def hanging_tool(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """wat2wasm that never ends, under the sandbox, in a folder its uid can read;
    returns the name its sleep runs under."""
    marker = f"pf-test-hang-{uuid.uuid4().hex}"
    folder = Path(tempfile.mkdtemp(prefix="pf-tool-"))
    folder.chmod(0o755)
    tool = folder / "wat2wasm"
    tool.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = --version ]; then exec /usr/bin/wat2wasm --version; fi\n'
        f"exec -a {marker} sleep 300\n"
    )
    tool.chmod(0o755)
    monkeypatch.setenv("PF_TOOL_WAT2WASM", str(tool))
    monkeypatch.setenv("PF_WAT_ASSEMBLER", "wat2wasm")
    yield marker
    shutil.rmtree(folder)


def _pids_named(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0]
        except OSError:
            continue
        if argv0 == marker.encode() and not process_gone(int(entry.name)):
            found.append(int(entry.name))
    return found


def _wait(predicate: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"never: {what}")
        time.sleep(0.02)


@contextlib.contextmanager
def _hanging_compiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Wrapper, BuildProcess]]:
    """A build process whose compiler (the wrapper) hangs until released; released and
    closed at the end."""
    monkeypatch.setenv("PF_CACHE_DIR", str(tmp_path / "cache"))
    wrapper = install_wrapper(tmp_path, monkeypatch)
    wrapper.hang()
    process = BuildProcess(load_settings())
    try:
        yield wrapper, process
    finally:
        wrapper.release()
        process.close()


def test_a_compile_there_is_the_compile_here(settings: Settings, process: BuildProcess) -> None:
    seen: list[object] = []
    before = time.time()
    result = _compile(
        process,
        _request(wat(1)),
        on_start=lambda at, ending: seen.append((at, ending)),
        on_phase=lambda label, index: seen.append(label),
        missed=True,
    )
    # Started first, at the time it started there; its step only if it lasted (below),
    # and then the start did not come with the end.
    start = seen[0]
    assert isinstance(start, tuple)
    at, ending = start
    assert isinstance(at, float) and before <= at <= time.time()
    assert all(label == "compile" for label in seen[1:])
    assert ending == (len(seen) == 1)
    assert process.pid is not None and process.pid != os.getpid()
    (artifact,) = result.artifacts
    assert artifact.read_bytes().startswith(b"\0asm") and not result.cached
    # Stored by the child where this process finds it: the same action, a cache hit.
    here = compile_sources(_request(wat(1)), settings)
    assert here.cached and here.key == result.key and here.artifacts == result.artifacts

    with pytest.raises(CompileFailed) as failed:
        _compile(process, _request("(module\n  (func (result i32) i64.const 1))\n"))
    assert failed.value.diagnostics, failed.value.message
    assert failed.value.diagnostics[0].file == "m.wat" and failed.value.diagnostics[0].line == 2
    assert _compile(process, _request(wat(2))).artifacts[0].name == "m.wasm"  # still serving


def test_a_missing_toolchain_crosses_with_its_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PF_WAT_ASSEMBLER", "wat2wasm")
    monkeypatch.setenv("PF_TOOL_WAT2WASM", str(tmp_path / "no-such-wat2wasm"))
    process = BuildProcess(load_settings())
    try:
        with pytest.raises(ToolchainMissing) as missing:
            _compile(process, _request(wat(3)))
    finally:
        process.close()
    assert missing.value.install and "apt-get install" in missing.value.install
    assert missing.value.hint == f"install it with: {missing.value.install}"


@pytest.mark.parametrize(
    "error",
    [
        CompileFailed(
            "m.c:1:2: error: x", diagnostics=[Diagnostic("m.c", 1, 2, "error", "x")], log="x"
        ),
        ToolchainMissing("C → wasm", "clang is not installed", "apt-get install -y clang"),
        BuildTimeout("the compile", 2.5),
        BuildCancelled("the build"),
        InvalidOption("opt_level", "not one of the levels", ["0", "1"]),
        QueueFull(10, 3),
        SandboxUnavailable("no user namespaces", "sysctl kernel.unprivileged_userns_clone=1"),
        PfError("plain", hint="a hint"),
    ],
)
def test_every_kind_of_pf_error_survives_pickling_with_its_fields(error: PfError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.message, copy.hint, copy.code, copy.args) == (
        error.message,
        error.hint,
        error.code,
        error.args,
    )
    assert vars(copy) == vars(error)


def test_a_cancel_reaches_the_compile_in_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _hanging_compiles(tmp_path, monkeypatch) as (wrapper, process):
        cancel = threading.Event()
        thread, outcome = _compile_in_thread(process, _request(wat(4)), cancel=cancel)
        pid = wrapper.child_pid()
        cancel.set()
        process.forward_cancels()  # as whoever cancels in pf serve does
        thread.join(20)
        assert isinstance(outcome[0], BuildCancelled)
        _wait(lambda: process_gone(pid), "the cancelled compiler ended")


def test_held_compiles_come_back_unstarted_and_running_ones_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PF_JOBS", "1")
    with _hanging_compiles(tmp_path, monkeypatch) as (wrapper, process):
        started: list[str] = []
        running, first = _compile_in_thread(
            process, _request(wat(5)), on_start=lambda *_: started.append("first")
        )
        wrapper.child_pid()
        # One compile at a time (PF_JOBS=1): these two wait in the child, not started.
        waiting = [
            _compile_in_thread(process, _request(wat(n)), on_start=lambda *_: started.append("x"))
            for n in (6, 7)
        ]
        cancelled = threading.Event()
        dropped, gone = _compile_in_thread(process, _request(wat(8)), cancel=cancelled)
        cancelled.set()
        process.forward_cancels()
        dropped.join(20)
        assert isinstance(gone[0], BuildCancelled)
        process.hold()
        for thread, outcome in waiting:
            thread.join(20)
            assert isinstance(outcome[0], Unstarted)
        with pytest.raises(Unstarted):
            _compile(process, _request(wat(9)))  # handed over after the hold
        wrapper.release()
        running.join(20)
        assert not isinstance(first[0], BaseException) and started == ["first"]
        assert wrapper.start_count() == 1


def test_a_killed_build_process_fails_its_compiles_and_the_next_starts_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hanging_tool: str
) -> None:
    marker = hanging_tool
    monkeypatch.setenv("PF_CACHE_DIR", str(tmp_path / "cache"))
    process = BuildProcess(load_settings())
    try:
        thread, outcome = _compile_in_thread(process, _request(wat(10)))
        _wait(lambda: _pids_named(marker) or outcome, "the compiler started")
        assert not outcome, outcome
        first = process.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        thread.join(20)
        (error,) = outcome
        assert isinstance(error, BuildProcessLost)
        assert "killed by signal 9" in error.message and error.hint
        # The sandbox dies with the process that started it: no compiler is left.
        _wait(lambda: not _pids_named(marker), "the orphaned compiler ended")

        monkeypatch.delenv("PF_TOOL_WAT2WASM")
        process.settings = load_settings()
        result = _compile(process, _request(wat(11)))
        assert result.artifacts[0].read_bytes().startswith(b"\0asm")
        assert process.pid not in (None, first)
    finally:
        process.close()


def test_closing_ends_the_child_and_refuses_later_compiles(process: BuildProcess) -> None:
    _compile(process, _request(wat(12)))
    pid = process.pid
    assert pid is not None
    process.close()
    assert process_gone(pid)
    with pytest.raises(BuildProcessLost, match="shutting down"):
        _compile(process, _request(wat(13)))


def test_the_childs_log_records_are_logged_here_under_their_names(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ours, theirs = socket.socketpair()
    sender, receiver = Connection(theirs.detach()), Connection(ours.detach())
    forward = _Forward(sender.send)
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        record = logging.LogRecord(
            "pf.sandbox", logging.WARNING, __file__, 1, "cell %s: %s", ("3", "reset"), None
        )
        record.exc_info = __import__("sys").exc_info()
    forward.emit(record)
    child = object.__new__(_Child)
    child.calls = {}
    child.lock = threading.Lock()
    with caplog.at_level(logging.WARNING, logger="pf.sandbox"):
        BuildProcess._deliver(child, receiver.recv())
    (logged,) = [r for r in caplog.records if r.name == "pf.sandbox"]
    assert logged.levelno == logging.WARNING
    assert logged.getMessage().startswith("cell 3: reset\nTraceback")
    assert "No space left on device" in logged.getMessage()
    sender.close()
    receiver.close()


def test_a_compile_that_lasts_is_shown_started_and_in_its_step_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []
    with _hanging_compiles(tmp_path, monkeypatch) as (wrapper, process):
        before = time.time()
        thread, outcome = _compile_in_thread(
            process,
            _request(wat(14)),
            on_start=lambda at, ending: seen.append((at, ending)),
            on_phase=lambda label, index: seen.append((label, index)),
        )
        wrapper.child_pid()
        _wait(lambda: len(seen) == 2, "the held step came while the compile ran")
        start, phase = seen
        assert isinstance(start, tuple)
        started, ending = start
        assert isinstance(started, float) and before <= started <= time.time()
        assert not ending  # its step came first
        assert phase == ("compile", 0) and not outcome
        wrapper.release()
        thread.join(20)
        assert outcome[0].artifacts[0].name == "m.wasm"  # type: ignore[attr-defined]
        assert len(seen) == 2  # nothing more: the end is the call's return


@pytest.fixture
def wire() -> Iterator[tuple[Connection, Connection]]:
    ours, theirs = socket.socketpair()
    sending, receiving = Connection(theirs.detach()), Connection(ours.detach())
    yield sending, receiving
    sending.close()
    receiving.close()


def _sent(receiving: Connection) -> list[tuple[object, ...]]:
    messages = []
    while receiving.poll(0.2):
        messages.append(receiving.recv())
    return messages


def test_a_step_is_held_and_dropped_by_the_success_that_ends_it_first(
    wire: tuple[Connection, Connection],
) -> None:
    sending, receiving = wire
    sender = _Sender(sending, hold=30.0)
    try:
        sender.phase(1, ("phase", 1, "compile", 0, 5.0))
        sender.phase(1, ("phase", 1, "link", 1, 5.0))  # the next step replaces it
        sender.phase(2, ("phase", 2, "compile", 0, 6.0))
        sender.of_compile(1, ("done", 1, "result", 5.0), drop_held=True)
        # A line, or a failure, sends the compile's step first: the step a build failed in.
        sender.of_compile(2, ("line", 2, "stderr", "warning", 6.0), drop_held=False)
        sender.phase(3, ("phase", 3, "compile", 0, 7.0))
        sender.of_compile(3, ("failed", 3, "error", 7.0), drop_held=False)
        sender.send(("log", "pf.engine", 20, "text"))
        assert _sent(receiving) == [
            ("done", 1, "result", 5.0),
            ("phase", 2, "compile", 0, 6.0),
            ("line", 2, "stderr", "warning", 6.0),
            ("phase", 3, "compile", 0, 7.0),
            ("failed", 3, "error", 7.0),
            ("log", "pf.engine", 20, "text"),
        ]
    finally:
        sender.close()


def test_a_step_still_running_after_the_hold_is_sent(
    wire: tuple[Connection, Connection],
) -> None:
    sending, receiving = wire
    sender = _Sender(sending, hold=0.05)
    try:
        held_at = time.monotonic()
        sender.phase(1, ("phase", 1, "compile", 0, 5.0))
        assert receiving.poll(10) and receiving.recv() == ("phase", 1, "compile", 0, 5.0)
        assert time.monotonic() - held_at >= 0.05
        sender.of_compile(1, ("done", 1, "result", 5.0), drop_held=True)
        assert _sent(receiving) == [("done", 1, "result", 5.0)]  # sent once
    finally:
        sender.close()


def test_the_action_a_lookup_keyed_is_compiled_there_without_keying_it_again(
    settings: Settings, process: BuildProcess
) -> None:
    request = _request(wat(16))
    action = prepare(request, settings)
    assert lookup(request, settings, action=action) is None
    # Handed over with a key of the caller's: the child keys nothing of its own, so the
    # outputs are stored under that key, and the request's own still misses.
    given = dataclasses.replace(action, key="e" * 64)
    result = _compile(process, request, missed=True, action=given)
    assert result.key == "e" * 64 and not result.cached
    assert result.artifacts[0].read_bytes().startswith(b"\0asm")
    assert lookup(request, settings, action=given) is not None
    assert lookup(request, settings) is None


SOURCES = {
    "c": ("m.c", b"int f(void) { return 1; }\n"),
    "rust": ("lib.rs", b'#[no_mangle]\npub extern "C" fn f() -> i32 { 1 }\n'),
    "fortran": ("m.f90", b"subroutine f\nend subroutine f\n"),
    "wat": ("m.wat", wat(17).encode()),
}


@pytest.mark.parametrize("language", sorted(DRIVERS))
def test_every_plan_crosses_to_the_build_process_whole(settings: Settings, language: str) -> None:
    # Each target, with every export and narrowed to one: the in-process steps (export
    # lists, checks, rewrites) included. A closure among them would not pickle.
    name, content = SOURCES[language]
    for target in get_driver(language).targets:
        for exports in (None, ("f",)):
            options = Options(exports=exports)
            request = CompileRequest(language, target, (SourceFile(name, content),), options)
            action = prepare(request, settings)
            again = pickle.loads(pickle.dumps(action))
            assert again == action
            steps = zip(again.plan.steps, action.plan.steps, strict=True)
            assert all(type(a) is type(b) for a, b in steps)


def _niceness(pid: int, thread: str | int) -> int:
    stat = Path(f"/proc/{pid}/task/{thread}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[16])


def test_the_build_process_and_what_it_starts_yield_to_the_api_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _hanging_compiles(tmp_path, monkeypatch) as (wrapper, process):
        # A compile that stays running: its tool is a process the child started.
        _compile_in_thread(process, _request(wat(18)))
        tool = wrapper.child_pid()
        child = process.pid
        assert child is not None
        expected = min(os.getpriority(os.PRIO_PROCESS, 0) + NICENESS, 19)
        # Every thread of the child (the compile threads were started after it lowered
        # its priority) and the tool it runs.
        threads = [t.name for t in Path(f"/proc/{child}/task").iterdir()]
        assert len(threads) > 1
        assert {_niceness(child, t) for t in threads} == {expected}
        assert _niceness(tool, tool) == expected


def test_begin_hands_a_compile_over_and_its_end_comes_back_on_the_reader(
    process: BuildProcess,
) -> None:
    ended: list[tuple[object, object, str]] = []
    came = threading.Event()

    def on_end(result: object, error: object) -> None:
        ended.append((result, error, threading.current_thread().name))
        came.set()

    process.begin(_request(wat(15)), on_end, missed=True)
    assert came.wait(20)
    ((result, error, thread),) = ended
    assert error is None and thread == "pf-build-reader"
    assert result.artifacts[0].read_bytes().startswith(b"\0asm")  # type: ignore[attr-defined]
    came.clear()
    process.begin(_request("(module (func (result i32) i64.const 1))\n"), on_end)
    assert came.wait(20)
    assert ended[1][0] is None and isinstance(ended[1][1], CompileFailed)
