"""Run one subprocess under limits; the only place pf starts a process.

Strategy: the child gets its own session (so its process group is ours to kill), an
explicit environment, and rlimits on CPU, address space, file size, open files and
process count.
The limits are set by util-linux's ``prlimit``, which the child execs first and which
execs the command in the same process, limits in place: setting them in a Python
``preexec_fn`` instead would force a full ``fork`` of pf (no ``vfork``), which costs
1-2 ms per step in a small pf process and over 10 ms in a server holding 200 MB, while
the extra exec of ``prlimit`` costs about 0.7 ms whatever pf's size. Where ``prlimit``
is not installed, the ``preexec_fn`` does the same job, slower.

The calling thread then waits on one selector for the two output pipes and a pidfd of
the child (no reader or watcher threads: starting three threads per step cost about a
millisecond). Each output line goes to the caller's sink as it arrives and into a
capture buffer capped at ``Limits.max_output`` bytes per stream. Past the cap, captured
lines are dropped and a single visible marker records the truncation; the sink keeps
receiving lines (whoever listens applies its own bound). At the deadline or on cancel
the whole group is killed; after a normal exit the group is killed too, so a straggling
grandchild cannot hold the pipes open.

:func:`run_attached` is the other way to run a command, the task runner's when one task
runs at a time: on pf's own stdin, stdout and stderr, in a process group of its own
that holds pf's terminal meanwhile, as a shell runs a foreground job. Imports only
config-level modules.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from pf.errors import SandboxError
from pf.sandbox.limits import DEFAULT_LIMITS, Limits

LineSink = Callable[[str, str], None]
"""Receives ``(stream, text)`` for each output line, stream being "stdout" or "stderr"."""

_MAX_LINE = 64 * 1024
_READ_SIZE = 64 * 1024
_READER_GRACE = 2.0
_CANCEL_POLL = 0.05
# util-linux, Essential on Debian: always there on the systems pf installs itself on.
_PRLIMIT_CANDIDATES = ("/usr/bin/prlimit", "/bin/prlimit")
_PRLIMIT_OPTIONS = {
    resource.RLIMIT_CPU: "--cpu",
    resource.RLIMIT_AS: "--as",
    resource.RLIMIT_FSIZE: "--fsize",
    resource.RLIMIT_NPROC: "--nproc",
    resource.RLIMIT_NOFILE: "--nofile",
    resource.RLIMIT_CORE: "--core",
}


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
    """One stream: splits bytes into lines, feeds the sink, keeps a capped copy."""

    def __init__(self, name: str, limit: int, sink: LineSink | None, order: list[tuple[str, str]]):
        self.name = name
        self.limit = limit
        self.sink = sink
        self.order = order
        self.parts: list[str] = []
        self.size = 0
        self.truncated = False
        self.pending = b""

    def data(self, chunk: bytes) -> None:
        """Take bytes as read; whole lines (or _MAX_LINE pieces of a longer one) go on."""
        buffer = self.pending + chunk
        start = 0
        while True:
            end = buffer.find(b"\n", start, start + _MAX_LINE)
            if end >= 0:
                self._line(buffer[start : end + 1])
                start = end + 1
            elif len(buffer) - start >= _MAX_LINE:
                self._line(buffer[start : start + _MAX_LINE])
                start += _MAX_LINE
            else:
                break
        self.pending = buffer[start:]

    def close(self) -> None:
        if self.pending:
            self._line(self.pending)
            self.pending = b""

    def _line(self, raw: bytes) -> None:
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


def _limit_values(limits: Limits) -> list[tuple[int, int]]:
    """(resource, value) for each limit that applies, capped at pf's own hard limits."""
    values = []
    for which, value in (
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_AS, limits.memory),
        (resource.RLIMIT_FSIZE, limits.file_size),
        (resource.RLIMIT_NPROC, limits.processes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ):
        if value is None:
            continue
        # The child inherits pf's hard limits and may not raise them.
        _soft, hard = resource.getrlimit(which)
        values.append((which, value if hard == resource.RLIM_INFINITY else min(value, hard)))
    return values


def _limit_in_child(values: list[tuple[int, int]]) -> Callable[[], None]:
    def apply() -> None:
        for which, value in values:
            resource.setrlimit(which, (value, value))

    return apply


def _prlimit() -> str | None:
    for candidate in _PRLIMIT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


_PRLIMIT = _prlimit()
# One exec that sets the limits and drops to another uid (setup builds it beside pf's
# Python from confine.c); without it, prlimit execs setpriv, which execs the command.
_CONFINE = Path(sys.executable).with_name("pf-confine")
_SETPRIV = "/usr/bin/setpriv"


def _check_program(program: str, cwd: Path, env: Mapping[str, str]) -> None:
    """Fail as Popen would if ``program`` cannot be executed, before any wrapper runs it.

    Popen searches the child's PATH (``env``), and a name with a slash is taken
    relative to ``cwd``; the wrapper's exec does the same.
    """
    if "/" in program:
        path = cwd / program
        if not path.exists():
            raise SandboxError(f"cannot run {program}: No such file or directory")
        if path.is_dir() or not os.access(path, os.X_OK):
            raise SandboxError(f"cannot run {program}: Permission denied")
        return
    if shutil.which(program, path=env.get("PATH", os.defpath)) is None:
        raise SandboxError(f"cannot run {program}: No such file or directory")


# The signals whose handlers end pf: Ctrl-C, and SIGTERM as the command line handles it.
_ENDING = (signal.SIGINT, signal.SIGTERM)


@dataclass
class _Held:
    """The handlers ``_hold_ending_signals`` replaced, and the signals that came since."""

    handlers: dict[int, Callable[[int, FrameType | None], Any]]
    came: list[int] = field(default_factory=list)

    def hold(self, signum: int, _frame: FrameType | None) -> None:
        self.came.append(signum)


def _hold_ending_signals() -> _Held | None:
    """Hold SIGINT and SIGTERM while a command starts: one handled between the command's
    start and the block that kills its group when pf ends would leave the command
    running. Their handlers run on the main thread only, whichever thread the signal
    came to, so it is theirs that are put aside, not a thread's mask (which the command
    would also inherit). Only a handler of pf's is put aside: an ignored signal stays
    ignored for the command too, and the default action ends pf at once either way.
    None off the main thread, where nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        return None
    held = _Held({})
    for signum in _ENDING:
        handler = signal.getsignal(signum)
        if callable(handler):
            held.handlers[signum] = handler
            signal.signal(signum, held.hold)
    return held


def _restore_signals(held: _Held | None) -> None:
    """Put the handlers back, then raise the signals held meanwhile: handled now."""
    if held is None:
        return
    for signum, handler in held.handlers.items():
        signal.signal(signum, handler)
    for signum in held.came:
        signal.raise_signal(signum)


def _spawn(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str],
    limits: Limits,
    *,
    attached: bool = False,
    terminal: int | None = None,
    user: int | None = None,
    piped_input: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` under ``limits`` in a process group of its own.

    Captured (the default): no stdin, both outputs piped, a session of its own.
    ``attached``: pf's own stdin, stdout and stderr; with ``terminal`` (pf's controlling
    terminal, pf in its foreground) the group is made the terminal's foreground group
    before the command starts, so it can read the terminal and Ctrl-C reaches it.
    ``user``: the command runs as that uid and gid, with no groups and no new
    privileges (pf must be root). ``piped_input``: stdin is a pipe from pf (a resident
    process reading requests), not /dev/null.
    """
    values = _limit_values(limits)
    command = list(argv)
    steps: list[Callable[[], None]] = []
    drop = (
        []
        if user is None
        else [_SETPRIV, f"--reuid={user}", f"--regid={user}", "--clear-groups", "--no-new-privs"]
    )
    # --name=value sets soft and hard; `--` ends the launcher's options, so the command
    # runs in its process under exactly the argv it was given.
    options = [f"{_PRLIMIT_OPTIONS[which]}={value}" for which, value in values]
    if user is not None and os.access(_CONFINE, os.X_OK):
        _check_program(argv[0], cwd, env)
        command = [str(_CONFINE), f"--uid={user}", *options, "--", *argv]
    elif _PRLIMIT is not None:
        _check_program(argv[0], cwd, env)
        command = [_PRLIMIT, *options, "--", *drop, *argv]
    else:
        steps.append(_limit_in_child(values))
        command = [*drop, *argv]
    if terminal is not None:
        steps.append(_foreground_in_child(terminal))
    preexec = None if not steps else steps[0] if len(steps) == 1 else _all(steps)
    stream = None if attached else subprocess.PIPE
    try:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=dict(env),
            stdin=None if attached else subprocess.PIPE if piped_input else subprocess.DEVNULL,
            stdout=stream,
            stderr=stream,
            start_new_session=not attached,
            process_group=0 if attached else None,
            preexec_fn=preexec,
            close_fds=True,
        )
    except OSError as exc:
        raise SandboxError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    except subprocess.SubprocessError as exc:  # a step before exec failed (the terminal)
        raise SandboxError(f"cannot run {argv[0]}: {exc}") from exc


def _all(steps: list[Callable[[], None]]) -> Callable[[], None]:
    def run_all() -> None:
        for step in steps:
            step()

    return run_all


def _foreground_in_child(terminal: int) -> Callable[[], None]:
    def take() -> None:
        # Before exec, so the command never runs in the background of its terminal (a
        # read there would stop it); Popen's process_group made the group already. A
        # background group asking for the terminal gets SIGTTOU unless it blocks it; the
        # mask would outlive exec, so it is restored.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
        os.tcsetpgrp(terminal, os.getpgrp())
        signal.pthread_sigmask(signal.SIG_SETMASK, old)

    return take


def _foreground_terminal() -> int | None:
    """A descriptor of pf's controlling terminal if pf is in its foreground, else None."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None  # no controlling terminal: a pipe, cron, CI
    try:
        if os.tcgetpgrp(fd) == os.getpgrp():
            return fd
    except OSError:
        pass  # not a terminal after all: treated as none
    os.close(fd)
    return None


class _Terminal:
    """pf's controlling terminal, lent to a command's process group while it runs.

    ``fd`` is set when pf is in the terminal's foreground (then the command gets the
    terminal before it starts); pf takes it back when the command stops or ends.
    """

    def __init__(self) -> None:
        self.fd = _foreground_terminal()
        self.lent = self.fd is not None

    def give(self, pgid: int) -> None:
        """Lend the terminal to ``pgid`` if pf is in its foreground now (`fg`, not `bg`)."""
        if self.fd is None:  # pf may have started in the background and been brought forward
            self.fd = _foreground_terminal()
        if self.fd is not None and os.tcgetpgrp(self.fd) == os.getpgrp():
            os.tcsetpgrp(self.fd, pgid)
            self.lent = True

    def take(self) -> None:
        """Make pf's group the foreground again (pf is in the background meanwhile)."""
        if self.fd is None or not self.lent:
            return
        self.lent = False
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
        try:
            os.tcsetpgrp(self.fd, os.getpgrp())
        except OSError:
            pass  # the terminal hung up: there is nothing left to give back
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def close(self) -> None:
        self.take()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class _Wait:
    """The deadlines one run waits against: the limit's timeout, then the pipes' grace."""

    def __init__(self, limits: Limits, started: float, cancel: threading.Event | None):
        self.deadline = None if limits.timeout is None else started + limits.timeout
        self.cancel = cancel
        self.drain_until: float | None = None
        # Set when the command is killed: by then it must have ended.
        self.kill_until: float | None = None

    def timeout(self) -> float | None:
        now = time.monotonic()
        waits = (self.deadline, self.drain_until, self.kill_until)
        ends = [t - now for t in waits if t is not None]
        if self.cancel is not None:
            ends.append(_CANCEL_POLL)
        return max(0.0, min(ends)) if ends else None


class Ending(Protocol):
    """How a captured run learns that its command ended, and how it stops it."""

    def fileno(self) -> int:
        """A descriptor that becomes readable when the command has ended."""
        ...

    def ended(self) -> None:
        """Called once it is readable: collect the outcome and kill what the command
        left running, so no straggler holds the pipes open."""
        ...

    def kill(self) -> None:
        """Stop the command and everything it started (timeout, cancel)."""
        ...


class _Group:
    """A child process of pf's in a process group of its own, watched through a pidfd."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.pidfd = os.pidfd_open(proc.pid)

    def fileno(self) -> int:
        return self.pidfd

    def ended(self) -> None:
        # Before reaping, so the group id cannot be reused.
        _kill_group(self.proc.pid)

    def kill(self) -> None:
        _kill_group(self.proc.pid)


@dataclass(frozen=True)
class Captured:
    """What :func:`capture` read of one command, and how its wait ended."""

    argv: Sequence[str]
    started: float
    out: _Capture
    err: _Capture
    expired: bool
    stopped: bool
    order: list[tuple[str, str]]

    def completed(self, code: int) -> Completed:
        """The command's outcome, given the exit code whatever ran it reported."""
        return Completed(
            argv=tuple(self.argv),
            code=code,
            stdout=self.out.text(),
            stderr=self.err.text(),
            duration=time.monotonic() - self.started,
            timed_out=self.expired,
            cancelled=self.stopped,
            truncated=self.out.truncated or self.err.truncated,
            lines=tuple(self.order),
        )


def capture(
    argv: Sequence[str],
    stdout: int,
    stderr: int,
    ending: Ending,
    limits: Limits,
    on_line: LineSink | None,
    cancel: threading.Event | None,
    started: float,
) -> Captured:
    """Read ``stdout`` and ``stderr`` (the read ends of the command's pipes) until the
    command ended and both reached their end, killing it at the deadline or on cancel.

    Raises SandboxError when the command outlives its kill by ``_READER_GRACE`` seconds
    (whatever runs it stopped answering).
    """
    order: list[tuple[str, str]] = []
    out = _Capture("stdout", limits.max_output, on_line, order)
    err = _Capture("stderr", limits.max_output, on_line, order)
    wait = _Wait(limits, started, cancel)
    expired = stopped = False
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ, out)
        selector.register(stderr, selectors.EVENT_READ, err)
        selector.register(ending.fileno(), selectors.EVENT_READ, None)
        streams = 2
        exited = False
        while streams or not exited:
            for key, _mask in selector.select(wait.timeout()):
                if key.data is None:
                    # Ended: stragglers are killed, then the pipes get a grace period.
                    exited = True
                    selector.unregister(key.fileobj)
                    ending.ended()
                    wait.kill_until = None
                    wait.drain_until = time.monotonic() + _READER_GRACE
                    continue
                chunk = os.read(key.fd, _READ_SIZE)
                if chunk:
                    key.data.data(chunk)
                else:
                    selector.unregister(key.fileobj)
                    streams -= 1
            now = time.monotonic()
            if wait.drain_until is not None and now >= wait.drain_until:
                break  # a process outside the group still holds a pipe open
            if exited:
                continue
            if wait.kill_until is not None and now >= wait.kill_until:
                raise SandboxError(f"{argv[0]} did not stop when it was killed")
            if cancel is not None and cancel.is_set() and not stopped:
                stopped = True
                wait.kill_until = now + _READER_GRACE
                ending.kill()
            elif wait.deadline is not None and now >= wait.deadline and not expired:
                expired = True
                wait.deadline = None
                wait.kill_until = now + _READER_GRACE
                ending.kill()
    out.close()
    err.close()
    return Captured(argv, started, out, err, expired, stopped, order)


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    limits: Limits = DEFAULT_LIMITS,
    on_line: LineSink | None = None,
    cancel: threading.Event | None = None,
    user: int | None = None,
) -> Completed:
    """Run ``argv`` (a list, never a shell string) in ``cwd`` with exactly ``env``,
    as ``user`` (a uid, pf being root) when given.

    Setting ``cancel`` kills the process group within ``_CANCEL_POLL`` seconds.
    """
    if not argv:
        raise SandboxError("nothing to run: empty command")
    started = time.monotonic()
    held = _hold_ending_signals()
    try:
        proc = _spawn(argv, cwd, env, limits, user=user)
    except BaseException:
        _restore_signals(held)
        raise
    assert proc.stdout is not None and proc.stderr is not None
    group: _Group | None = None
    try:
        _restore_signals(held)  # one that came meanwhile ends pf here, its group known
        group = _Group(proc)
        captured = capture(
            argv,
            proc.stdout.fileno(),
            proc.stderr.fileno(),
            group,
            limits,
            on_line,
            cancel,
            started,
        )
    finally:
        _kill_group(proc.pid)
        proc.wait()
        if group is not None:
            os.close(group.pidfd)
        proc.stdout.close()
        proc.stderr.close()
    return captured.completed(proc.returncode)


def run_attached(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], limits: Limits = DEFAULT_LIMITS
) -> Completed:
    """Run ``argv`` on pf's own stdin, stdout and stderr, as make and just run commands.

    What the command writes reaches pf's output byte for byte and a terminal stays a
    terminal (tools keep their colours and prompts). It runs in a process group of its
    own: when pf has a controlling terminal and is in its foreground, that group gets the
    terminal while it runs (Ctrl-C and Ctrl-Z reach the command, as in a shell), and pf
    takes it back after. When the command stops (Ctrl-Z), pf stops too and continues it
    when continued itself. When pf is interrupted or terminated, or the command fails,
    the whole group is killed; a background process left behind by a command that
    succeeded is left alone, as make and just leave it. There is no timeout: the user
    is at the terminal.
    """
    if not argv:
        raise SandboxError("nothing to run: empty command")
    if limits.timeout is not None:
        raise SandboxError("an attached command cannot have a timeout")
    started = time.monotonic()
    terminal = _Terminal()
    try:
        held = _hold_ending_signals()
        try:
            proc = _spawn(argv, cwd, env, limits, attached=True, terminal=terminal.fd)
        except BaseException:
            _restore_signals(held)
            raise
        try:
            _restore_signals(held)  # one that came meanwhile ends pf here, its group known
            proc.returncode = _wait_as_job(proc.pid, terminal)
        finally:
            if proc.returncode is None:  # pf was interrupted or terminated while it ran
                _kill_group(proc.pid)
                proc.wait()
        if proc.returncode != 0:
            # Failed or killed (Ctrl-C, which background jobs ignore): what it left
            # running goes with it. After success, a started server stays up.
            _kill_group(proc.pid)
    finally:
        terminal.close()
    return Completed(
        argv=tuple(argv),
        code=proc.returncode,
        stdout="",
        stderr="",
        duration=time.monotonic() - started,
    )


def _wait_as_job(pid: int, terminal: _Terminal) -> int:
    """Wait for ``pid``'s exit code, stopping pf with it as a shell's job would stop."""
    while True:
        _, status = os.waitpid(pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            return os.waitstatus_to_exitcode(status)
        if os.WSTOPSIG(status) == signal.SIGSTOP:
            continue  # `kill -STOP` or a debugger: whoever stopped it continues it
        # Ctrl-Z, or the terminal used from the background: pf's shell only sees pf, so
        # pf stops too (the shell takes the terminal back) and carries on when continued.
        terminal.take()
        os.kill(os.getpid(), signal.SIGSTOP)
        terminal.give(pid)
        os.killpg(pid, signal.SIGCONT)
