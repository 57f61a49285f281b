"""Resident processes: long-lived programs, confined like a compile step, that answer one
request after another, kept in a pool for reuse.

A resident is started from an argv the caller gives and speaks one protocol: pf writes a
request frame on its stdin, it writes exactly one reply frame on its stdout; a frame is a
4-byte big-endian length and that many bytes. Its stderr goes to a pipe pf drains into a
small tail, quoted when the process dies. Nothing about the requests is known here.

Confinement (``PF_SANDBOX=bwrap``): bubblewrap with every namespace unshared (no
network), ``/usr`` and the caller's read-only paths, a fresh ``/proc``, a read-only
``/dev``, an empty read-only ``/tmp`` and a read-only root: no directory is writable at
all. It runs as ``Settings.sandbox_uid`` when pf is root, under RLIMIT_NPROC, NOFILE,
FSIZE and AS (``max_procs``, ``max_open_files``, ``max_file_size``, ``max_memory``) and
no core dumps. There is no RLIMIT_CPU: CPU time would add up over the process's whole
life; each request has a wall-clock timeout instead. RLIMIT_AS counts reserved address
space, not memory used: wasmtime reserves 4 GiB and 64 MiB per linear memory by default,
so a program hosting it fits the default ``max_memory`` (8 GiB) only with one instance
alive at a time; one that sets wasmtime's ``memory_reservation`` and
``memory_guard_size`` to 0 reserves only what its memories use and fits any sensible
limit (its ``memory.grow`` then fails cleanly at the limit). ``PF_SANDBOX=off`` starts
the argv as it is, under the same rlimits, with a parent-death signal.

The pool keeps processes per (argv, read-only paths, environment, sandbox mode and uid,
limits), idle ones for reuse, at most ``max(jobs, worker_concurrency)`` per key (and, for a
while, the successors of those near their last request, below); a caller beyond that
waits for one to come free within its own timeout. A process is killed
(bubblewrap outside, and with it its whole pid namespace) and never reused when a request
times out or is cancelled, when it replies more than the caller allows, breaks the
framing, writes to stdout between requests, or dies; also after ``sandbox_cell_jobs``
requests (0: one process per request). Reuse is only safe for programs that keep no
state from one request to the next: that is the caller's duty.

A process retired for its count is replaced before it is needed: when it has a quarter
of its requests left, its successor is started in the background and waits, idle, last
in line, while the old one answers the rest (one more process of its key for a while).
Started on demand instead, the successor made the request after the old one's last
wait for its start (60 ms for the WAT assembler here): a stall of one compile thread
every few hundred compiles. A successor that fails to start is logged and changes
nothing: the request after the old one's last starts one and meets the error itself.

Processes are started from one long-lived thread, since ``--die-with-parent`` (and the
parent-death signal without the sandbox) fires when the thread that started a process
exits; they die with pf, even on ``kill -9``, and :func:`shutdown` (run at exit) kills
them all.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import select
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from pf.config import Settings
from pf.errors import SandboxError
from pf.sandbox.limits import Limits
from pf.sandbox.process import _SETPRIV, _kill_group, _spawn
from pf.sandbox.wrappers import (
    INSIDE_PATH,
    OWNER_VARIABLE,
    _bwrap,
    _isolated,
    _owner,
    check_reachable,
    inside_env,
    outside_system,
    probe,
    sandbox_uid,
)

log = logging.getLogger("pf.sandbox")

# A fresh process loads its program before it reads its first request: that request's
# timeout is extended by this much, so a slow start is not blamed on the payload.
START_ALLOWANCE = 10.0
# How much of its stderr a process leaves for the message when it dies.
_STDERR_TAIL = 4096
_SAID = 1000
# Once its stdout closed, how long a dying process gets to exit on its own (its real
# exit status reads better than "killed").
_EXIT_GRACE = 1.0
_CANCEL_POLL = 0.05
_READ_SIZE = 64 * 1024
_HEADER = struct.Struct(">I")
_CLOSED = "it closed its output before it replied in full"
# A pipe holds 64 KiB: reading 16 times that ends a drain even while a writer that
# escaped the kill keeps writing.
_DRAIN_READS = 16

Key = tuple[tuple[str, ...], tuple[Path, ...], tuple[tuple[str, str], ...], str, int | None, Limits]


@dataclass(frozen=True)
class Reply:
    """How one request ended: the reply's payload, or why there is none."""

    payload: bytes | None = None
    timed_out: bool = False
    cancelled: bool = False
    # The process died or broke the protocol: what happened, for the user.
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.payload is not None


class _Frame:
    """A reply frame read piece by piece: the header, then the payload it announces."""

    def __init__(self, max_reply: int) -> None:
        self.max_reply = max_reply
        self.data = bytearray()
        self.length: int | None = None

    def need(self) -> int:
        if self.length is None:
            return _HEADER.size - len(self.data)
        return self.length - len(self.data)

    def feed(self, chunk: bytes) -> str | None:
        """Take bytes read (at most ``need()``); a protocol breach when there is one."""
        self.data += chunk
        if self.length is None and len(self.data) == _HEADER.size:
            (self.length,) = _HEADER.unpack(self.data)
            self.data.clear()
            if self.length > self.max_reply:
                return f"it replied {self.length} bytes, over the limit of {self.max_reply}"
        return None

    def done(self) -> bool:
        return self.length is not None and len(self.data) == self.length


class Resident:
    """One running process, used by one request at a time."""

    def __init__(self, key: Key, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        self.key = key
        self.proc = proc
        self.requests = 0
        self.dead = False
        self.succeeded = False  # its successor was started (by the thread using it)
        self.pidfd = os.pidfd_open(proc.pid)
        self.stdin = proc.stdin.fileno()
        self.stdout = proc.stdout.fileno()
        self.stderr = proc.stderr.fileno()
        for fd in (self.stdin, self.stdout, self.stderr):
            os.set_blocking(fd, False)
        self.tail = bytearray()

    @property
    def program(self) -> str:
        return Path(self.key[0][0]).name

    # Between requests -----------------------------------------------------------------

    def fit(self) -> bool:
        """Whether it may take a request: alive, and silent on stdout since its last
        reply (anything there would be read as the next reply)."""
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        poller.register(self.stdout, select.POLLIN)
        poller.register(self.stderr, select.POLLIN)
        for fd, _event in poller.poll(0):
            if fd == self.stderr:
                self._drain_stderr()
            else:
                return False
        return True

    # One request ----------------------------------------------------------------------

    def exchange(
        self, payload: bytes, deadline: float, cancel: threading.Event | None, max_reply: int
    ) -> Reply:
        """Send one request and read its reply. Every way but a clean reply kills it."""
        self.requests += 1
        request = memoryview(_HEADER.pack(len(payload)) + payload)
        sent = 0
        frame = _Frame(max_reply)
        poller = select.poll()
        poller.register(self.stdin, select.POLLOUT)
        poller.register(self.stdout, select.POLLIN)
        poller.register(self.stderr, select.POLLIN)
        poller.register(self.pidfd, select.POLLIN)
        while True:
            if cancel is not None and cancel.is_set():
                self.kill()
                return Reply(cancelled=True)
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                return Reply(timed_out=True)
            wait = min(left, _CANCEL_POLL) if cancel is not None else left
            for fd, event in poller.poll(wait * 1000):
                if fd == self.stdin:
                    if event & select.POLLOUT and not event & (select.POLLERR | select.POLLHUP):
                        sent += self._write(request[sent:])
                    if sent == len(request) or event & (select.POLLERR | select.POLLHUP):
                        # Sent, or it closed its stdin: its stdout tells the rest.
                        poller.unregister(fd)
                elif fd == self.stderr:
                    if not self._drain_stderr():
                        poller.unregister(fd)
                elif fd == self.stdout:
                    breach = self._read_reply(frame)
                    if breach is not None:
                        return self._failed(breach, ending=breach == _CLOSED)
                else:
                    # It exited: whatever it wrote before is in the pipe already.
                    breach = self._read_reply(frame, until_empty=True)
                    if not frame.done():
                        return self._failed(breach or "it exited before it replied", True)
                    self.kill()
                if frame.done():
                    if sent < len(request):
                        return self._failed("it replied before it read the whole request")
                    return Reply(payload=bytes(frame.data))

    def _write(self, data: memoryview) -> int:
        try:
            return os.write(self.stdin, data[:_READ_SIZE])
        except BlockingIOError:
            return 0
        except BrokenPipeError:
            return 0  # it closed its stdin; POLLERR follows

    def _read_reply(self, frame: _Frame, until_empty: bool = False) -> str | None:
        """Read what is there of the reply (up to its end, never past it)."""
        while not frame.done():
            try:
                chunk = os.read(self.stdout, min(frame.need(), _READ_SIZE))
            except BlockingIOError:
                return None
            if not chunk:
                return _CLOSED
            breach = frame.feed(chunk)
            if breach is not None or not until_empty:
                return breach
        return None

    def _drain_stderr(self) -> bool:
        """Keep the tail of what is in the stderr pipe; False at its end."""
        for _ in range(_DRAIN_READS):
            try:
                chunk = os.read(self.stderr, _READ_SIZE)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            self.tail += chunk
            del self.tail[:-_STDERR_TAIL]
        return True

    def _failed(self, what: str, ending: bool = False) -> Reply:
        """Kill it and say why. One that is ``ending`` (its output closed) first gets a
        moment to exit on its own, for its exit status and last words."""
        exited = self._await_exit() if ending else False
        self.kill()
        code = self.proc.returncode
        if not exited:
            status = "pf killed it"
        elif code >= 0:
            status = f"it exited with code {code}"
        else:
            status = f"it was killed by {signal.Signals(-code).name}"
        said = self.tail.decode("utf-8", "replace").strip()[-_SAID:]
        message = f"the resident program {self.program} failed: {what}; {status}"
        return Reply(failure=f"{message}; its last output: {said}" if said else message)

    def _await_exit(self) -> bool:
        """Wait up to ``_EXIT_GRACE`` for it to exit, keeping its stderr; whether it did."""
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        poller.register(self.stderr, select.POLLIN)
        until = time.monotonic() + _EXIT_GRACE
        while (left := until - time.monotonic()) > 0:
            for fd, _event in poller.poll(left * 1000):
                if fd == self.pidfd:
                    return True
                if not self._drain_stderr():
                    poller.unregister(fd)
        return False

    # The end --------------------------------------------------------------------------

    def kill(self) -> None:
        """Kill it whole (bubblewrap outside; its pid namespace dies with it), reap it and
        close its pipes. Safe to call twice."""
        if self.dead:
            return
        self.dead = True
        if self.key[3] == "off":
            _kill_descendants(self.proc.pid)
        _kill_group(self.proc.pid)  # before the reap, so the group id cannot be reused
        self.proc.wait()
        self._drain_stderr()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            assert stream is not None
            # A pipe it filled is closed unwritten: nothing reads it any more.
            with contextlib.suppress(BrokenPipeError):
                stream.close()
        os.close(self.pidfd)

    def signal_kill(self) -> None:
        """Kill it without touching its pipes: the thread using it reaps it."""
        if not self.dead:
            _kill_group(self.proc.pid)


def _kill_descendants(pid: int) -> None:
    """Kill every descendant of ``pid`` (alive, so its children are still its own).

    Without the sandbox there is no pid namespace to die with it, and a child that left
    its process group (setsid) escapes the group kill; it is found by its parent."""
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        parent = int(stat[stat.rindex(b")") + 2 :].split()[1])
        parents.setdefault(parent, []).append(int(entry.name))
    found = list(parents.get(pid, ()))
    for child in found:  # grows while it is walked: the whole tree
        found += parents.get(child, ())
    for child in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)


def _limits(settings: Settings) -> Limits:
    return Limits(
        timeout=None,  # no RLIMIT_CPU: each request has its own wall-clock timeout
        memory=settings.max_memory,
        file_size=settings.max_file_size,
        processes=settings.max_procs,
        open_files=settings.max_open_files,
    )


def _key(
    settings: Settings, argv: Sequence[str], readonly: Sequence[Path], env: Mapping[str, str]
) -> Key:
    if not argv:
        raise SandboxError("nothing to run: empty command")
    uid = sandbox_uid(settings)
    paths = tuple(sorted(set(outside_system(readonly))))
    return (
        tuple(argv),
        paths,
        tuple(sorted(env.items())),
        settings.sandbox,
        uid,
        _limits(settings),
    )


def _command(settings: Settings, key: Key) -> tuple[list[str], dict[str, str]]:
    argv, readonly, env, mode, uid, _limit = key
    if mode == "off":
        # Killed with pf even on kill -9: the signal fires when the starting thread
        # (the pool's launcher, as long-lived as pf) ends.
        # The owner marker lets the next pf kill what a pf killed mid-kill left.
        marked = {"PATH": INSIDE_PATH, **dict(env), OWNER_VARIABLE: _owner()}
        return [_SETPRIV, "--pdeathsig=KILL", "--", *argv], marked
    failure = probe(settings)
    if failure is not None:
        raise failure
    bwrap = _bwrap(settings)
    assert bwrap is not None  # the probe found it
    check_reachable(readonly, uid)
    options = _isolated(bwrap, readonly)
    # Read-only everywhere: /tmp and /dev are bwrap's tmpfs and writable unless told.
    options += ["--remount-ro", "/tmp", "--remount-ro", "/dev", "--remount-ro", "/"]
    options += ["--chdir", "/", "--", *argv]
    return options, inside_env(dict(env))


def _start(settings: Settings, key: Key) -> Resident:
    """Start a process for ``key``; runs on the launcher thread."""
    command, env = _command(settings, key)
    proc = _spawn(command, Path("/"), env, key[5], user=key[4], piped_input=True)
    try:
        return Resident(key, proc)
    except BaseException:
        _kill_group(proc.pid)
        proc.wait()
        raise


class _Pool:
    """The resident processes of this pf, idle ones kept per key."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._idle: dict[Key, list[Resident]] = {}
        self._live: dict[Key, int] = {}  # started or starting, per key
        self._all: set[Resident] = set()
        self._launcher: ThreadPoolExecutor | None = None
        # Moves on at each shutdown: a successor that comes up after one is not kept.
        self._generation = 0

    def call(
        self,
        settings: Settings,
        argv: Sequence[str],
        readonly: Sequence[Path],
        payload: bytes,
        *,
        timeout: float,
        max_reply: int,
        cancel: threading.Event | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Reply:
        """Send ``payload`` to a process running ``argv`` and return its reply.

        ``timeout`` covers waiting for a free process and the request itself; a freshly
        started process gets ``START_ALLOWANCE`` more for loading. Raises
        SandboxUnavailable when the sandbox cannot start, SandboxError when the process
        cannot be started; a process that fails gives a Reply with ``failure``.
        """
        if len(payload) > 0xFFFFFFFF:
            raise SandboxError("a request to a resident program is over 4 GiB")
        deadline = time.monotonic() + timeout
        key = _key(settings, argv, readonly, env or {})
        cap = max(settings.jobs, settings.worker_concurrency)
        while True:
            waited = self._acquire(key, cap, deadline, cancel)
            if isinstance(waited, Reply):
                return waited
            resident, allowance = waited, 0.0
            if resident is None:
                try:
                    resident = self._launch(settings, key)
                except BaseException:
                    self._drop(key, None)
                    raise
                allowance = START_ALLOWANCE
            elif not resident.fit():
                self._drop(key, resident)
                continue
            reply = Reply()
            try:
                reply = resident.exchange(payload, deadline + allowance, cancel, max_reply)
            finally:
                limit = settings.sandbox_cell_jobs
                kept = reply.ok and not resident.dead and resident.requests < limit
                # Before it is released: from then on another thread may be using it.
                if kept and limit - resident.requests <= max(1, limit // 4):
                    self._succeed(settings, resident)
                if kept:
                    self._release(resident)
                else:
                    self._drop(key, resident)
            return reply

    def _acquire(
        self, key: Key, cap: int, deadline: float, cancel: threading.Event | None
    ) -> Resident | Reply | None:
        """An idle process, None when the caller is to start one (its place under the cap
        is taken), or a Reply when the wait timed out or was cancelled."""
        with self._lock:
            while True:
                idle = self._idle.get(key)
                if idle:
                    return idle.pop()
                if self._live.get(key, 0) < cap:
                    self._live[key] = self._live.get(key, 0) + 1
                    return None
                if cancel is not None and cancel.is_set():
                    return Reply(cancelled=True)
                left = deadline - time.monotonic()
                if left <= 0:
                    return Reply(timed_out=True)
                self._lock.wait(min(left, _CANCEL_POLL) if cancel is not None else left)

    def _launch(self, settings: Settings, key: Key) -> Resident:
        resident = self._start_later(settings, key).result()
        with self._lock:
            self._all.add(resident)
        return resident

    def _start_later(self, settings: Settings, key: Key) -> Future[Resident]:
        """A start of a process for ``key`` on the launcher thread."""
        with self._lock:
            if self._launcher is None:
                self._launcher = ThreadPoolExecutor(1, "pf-resident-launcher")
                atexit.register(self.shutdown)
            launcher = self._launcher
        return launcher.submit(_start, settings, key)

    def _succeed(self, settings: Settings, resident: Resident) -> None:
        """Start ``resident``'s successor in the background, once (see the module's
        docstring); its place counts under its key from now."""
        if resident.succeeded:
            return
        resident.succeeded = True
        with self._lock:
            self._live[resident.key] += 1
            generation = self._generation
        started = self._start_later(settings, resident.key)
        started.add_done_callback(lambda done: self._stand_by(resident, done, generation))

    def _stand_by(self, predecessor: Resident, started: Future[Resident], generation: int) -> None:
        """The successor of ``predecessor`` is up (or failed to start): it waits first in
        the idle list, the one taken last, until the processes before it are gone."""
        key = predecessor.key
        try:
            successor = started.result()
        except Exception as error:
            log.warning(
                "pf: a new %s process did not start ahead of need (%s); the request after "
                "the old one's last starts one",
                predecessor.program,
                error,
            )
            self._drop(key, None)
            return
        with self._lock:
            current = generation == self._generation
            if current:
                self._all.add(successor)
                self._idle.setdefault(key, []).insert(0, successor)
                self._lock.notify_all()  # waiters of every key share the condition
        if not current:  # pf shut its processes down meanwhile
            self._drop(key, successor)

    def _release(self, resident: Resident) -> None:
        with self._lock:
            self._idle.setdefault(resident.key, []).append(resident)
            self._lock.notify_all()  # waiters of every key share the condition

    def _drop(self, key: Key, resident: Resident | None) -> None:
        """Kill ``resident`` (if any) and free its place under the cap."""
        if resident is not None:
            resident.kill()
        with self._lock:
            if resident is not None:
                self._all.discard(resident)
            self._live[key] -= 1
            if not self._live[key]:
                del self._live[key]
            self._lock.notify_all()  # waiters of every key share the condition

    def shutdown(self) -> None:
        """Kill every process (pf is exiting). Idle ones are reaped here; one in use is
        killed, and the thread using it sees it die and reaps it."""
        with self._lock:
            self._generation += 1
            idle = [resident for residents in self._idle.values() for resident in residents]
            busy = self._all.difference(idle)
            for resident in idle:
                self._live[resident.key] -= 1
                if not self._live[resident.key]:
                    del self._live[resident.key]
            self._all -= set(idle)
            self._idle.clear()
        for resident in busy:
            resident.signal_kill()
        for resident in idle:
            resident.kill()


_pool = _Pool()

call = _pool.call
shutdown = _pool.shutdown
