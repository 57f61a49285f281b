"""Run one subprocess under limits; the only place pf starts a process.

Strategy: the child gets its own session (so its process group is ours to kill), an
explicit environment, and rlimits on CPU, address space, file size and process count,
set between fork and exec. Two reader threads drain stdout and stderr line by line, so
a chatty child never blocks on a full pipe; each line goes to the caller's sink as it
arrives and into a capture buffer capped at ``Limits.max_output`` bytes per stream. Past
the cap, captured lines are dropped and a single visible marker records the truncation;
the sink keeps receiving lines (whoever listens applies its own bound). On
timeout the whole group is killed; after a normal exit the group is killed too, so a
straggling grandchild cannot hold the pipes open. Imports only config-level modules.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pf.errors import SandboxError
from pf.sandbox.limits import DEFAULT_LIMITS, Limits

LineSink = Callable[[str, str], None]
"""Receives ``(stream, text)`` for each output line, stream being "stdout" or "stderr"."""

_MAX_LINE = 64 * 1024
_READER_GRACE = 2.0
_CANCEL_POLL = 0.05


def truncation_marker(limit: int) -> str:
    return f"[truncated: output exceeded {limit} bytes; the rest was discarded]"


@dataclass(frozen=True)
class Completed:
    """The outcome of one subprocess run."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str
    duration: float
    timed_out: bool = False
    truncated: bool = False
    cancelled: bool = False
    lines: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.timed_out and not self.cancelled


class _Capture:
    """One stream's capped buffer."""

    def __init__(self, name: str, limit: int, sink: LineSink | None, order: list[tuple[str, str]]):
        self.name = name
        self.limit = limit
        self.sink = sink
        self.order = order
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False

    def feed(self, raw: bytes) -> None:
        text = raw.decode("utf-8", errors="replace")
        if self.sink is not None:
            self.sink(self.name, text.rstrip("\n"))
        if self.truncated:
            return
        if self.size + len(raw) > self.limit:
            self.truncated = True
            text = truncation_marker(self.limit) + "\n"
        else:
            self.size += len(raw)
        self.parts.append(text)
        self.order.append((self.name, text.rstrip("\n")))

    def text(self) -> str:
        return "".join(self.parts)


def _drain(pipe: IO[bytes], capture: _Capture, lock: threading.Lock) -> None:
    with pipe:
        for raw in iter(lambda: pipe.readline(_MAX_LINE), b""):
            with lock:
                capture.feed(raw)


def _limit_child(limits: Limits) -> Callable[[], None]:
    def apply() -> None:
        for which, value in (
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_AS, limits.memory),
            (resource.RLIMIT_FSIZE, limits.file_size),
            (resource.RLIMIT_NPROC, limits.processes),
            (resource.RLIMIT_CORE, 0),
        ):
            if value is None:
                continue
            _soft, hard = resource.getrlimit(which)
            capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (capped, capped))

    return apply


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: Limits = DEFAULT_LIMITS,
    on_line: LineSink | None = None,
    cancel: threading.Event | None = None,
) -> Completed:
    """Run ``argv`` (a list, never a shell string) in ``cwd`` with exactly ``env``.

    Setting ``cancel`` kills the process group within ``_CANCEL_POLL`` seconds.
    """
    if not argv:
        raise SandboxError("nothing to run: empty command")
    order: list[tuple[str, str]] = []
    lock = threading.Lock()
    out = _Capture("stdout", limits.max_output, on_line, order)
    err = _Capture("stderr", limits.max_output, on_line, order)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_limit_child(limits),
            close_fds=True,
        )
    except OSError as exc:
        raise SandboxError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out, lock), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err, lock), daemon=True),
    ]
    for reader in readers:
        reader.start()
    # A watcher kills the group at the deadline or on cancel while this thread blocks in
    # waitpid: Popen.wait(timeout=...) polls with sleeps of up to 50 ms, which would add
    # that much to every step of every build.
    finished = threading.Event()
    expired = threading.Event()
    stopped = threading.Event()

    def watch() -> None:
        deadline = None if limits.timeout is None else started + limits.timeout
        while not finished.is_set():
            if cancel is not None and cancel.is_set():
                stopped.set()
                _kill_group(proc.pid)
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                expired.set()
                _kill_group(proc.pid)
                return
            # Cancellation is polled (an Event cannot be waited on together with another);
            # the process's exit wakes the watcher at once through `finished`.
            poll = _CANCEL_POLL if cancel is not None else None
            finished.wait(min(t for t in (remaining, poll) if t is not None))

    watcher = None
    if limits.timeout is not None or cancel is not None:
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        proc.wait()
    finally:
        finished.set()
        _kill_group(proc.pid)
        proc.wait()
        if watcher is not None:
            watcher.join()
    for reader in readers:
        reader.join(_READER_GRACE)
    duration = time.monotonic() - started
    with lock:
        return Completed(
            argv=tuple(argv),
            code=proc.returncode,
            stdout=out.text(),
            stderr=err.text(),
            duration=duration,
            timed_out=expired.is_set(),
            cancelled=stopped.is_set(),
            truncated=out.truncated or err.truncated,
            lines=tuple(order),
        )
