"""Cells: bubblewrap sandboxes kept for many confined steps, one build at a time.

Starting bubblewrap for every step (namespaces, mounts, then the tool) costs about
3 ms, more than a small compile. A cell is one bubblewrap sandbox with the isolation a
one-shot step gets (every namespace unshared, no network, /usr and the tools' prefixes
read-only, a read-only root, a private /tmp; the sandbox's uid when pf is root) whose
command is ``pf-cell`` (cell.c), a small supervisor that runs as pid 1 of the cell's pid
namespace and starts each step with a fork and an exec. pf talks to it over one end of
a socketpair the cell inherits (no address anywhere), sending each step's argv,
environment, working directory and limits, and the step's stdin and the write ends of
its output pipes as descriptors; the pipes are read as a one-shot step's are.

Why reuse is safe (each point has an attack test in tests/sandbox/test_cells.py):

- A job cannot signal, ptrace or read pf-cell (a namespace's init, not dumpable).
- After each step pf-cell kills and reaps every other process in the namespace and
  checks that /proc lists nobody else before it answers.
- Between builds pf empties the cell's workspace, /tmp and /dev/shm from outside (all
  three are directories of pf's bound into the cell; the rest of /dev is read-only), and
  a cell with SysV IPC objects left is retired, as is one whose directories above a
  mount point (made by bubblewrap in its /tmp) were moved or replaced. POSIX message
  queues are refused (their rlimit is 0) and key rings are refused (seccomp), both
  being per namespace, not per process.
- Anything unexpected (no answer in time, a closed socket, a malformed answer, a dead
  bubblewrap) kills the cell whole and fails the step with SandboxError; a killed cell
  is never reused. A cell is also retired after ``sandbox_cell_jobs`` steps.

Cells are kept per set of read-only paths, at most ``max(jobs, worker_concurrency)``
per process (one per build running at once); past that, an idle cell of another set is
retired, and if none is idle the build runs one bubblewrap per step. Cells are started
from one long-lived thread, as bubblewrap's --die-with-parent fires when the thread
that started it exits, and killed when pf exits.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pf.config import Settings
from pf.errors import SandboxError, SandboxUnavailable
from pf.sandbox.limits import Limits
from pf.sandbox.process import _CONFINE, _SETPRIV, Completed, LineSink, _limit_values, capture
from pf.sandbox.workspace import CELL_PREFIX, remove, root, sweep
from pf.sandbox.wrappers import (
    _bwrap,
    _isolated,
    check_reachable,
    inside_env,
    outside_system,
    probe,
    sandbox_uid,
)

PROGRAM = Path(sys.executable).with_name("pf-cell")
# Where a cell sees it: on the cell's own read-only root, so no directory of pf's
# installation shows inside.
_INSIDE_PROGRAM = Path("/pf-cell")
_START_TIMEOUT = 10.0
# pf-cell reads one request of at most 256 KiB (cell.c's MAX_MESSAGE).
_MAX_REQUEST = 256 * 1024
_MAX_FIELDS = 16384
# cell.c's order: cpu as fsize nproc nofile core msgqueue.
_RESOURCES = ("CPU", "AS", "FSIZE", "NPROC", "NOFILE", "CORE")
_WRITABLE = ("ws", "tmp", "shm")

Dispose = Callable[[Path], None]
"""Removes a directory pf no longer needs (the engine's sweeper does it off the hot path)."""

Key = tuple[str, int | None, tuple[Path, ...]]


def _limit_fields(limits: Limits) -> list[str]:
    import resource

    values = {which: value for which, value in _limit_values(limits)}
    fields = [str(values.get(getattr(resource, f"RLIMIT_{name}"), "-")) for name in _RESOURCES]
    # POSIX message queues live in the IPC namespace, not in a process: none at all.
    return [*fields, "0"]


def _request(cwd: Path, argv: Sequence[str], env: Mapping[str, str], limits: Limits) -> bytes:
    fields = [str(cwd), str(len(argv)), *argv, str(len(env))]
    fields += [f"{k}={v}" for k, v in env.items()]
    fields += _limit_fields(limits)
    if any("\0" in field for field in fields):
        raise SandboxError(f"cannot run {argv[0]}: an argument or variable holds a NUL byte")
    if len(fields) > _MAX_FIELDS:
        raise SandboxError(f"cannot run {argv[0]}: too many arguments and variables")
    body = b"R" + b"".join(f.encode("utf-8", "surrogateescape") + b"\0" for f in fields)
    if len(body) > _MAX_REQUEST:
        raise SandboxError(f"cannot run {argv[0]}: its arguments and environment are too large")
    return body


class Cell:
    """One running cell. Its ``path`` is the workspace, bound at its own path inside."""

    def __init__(self, key: Key, root: Path, lock: int, max_jobs: int) -> None:
        self.key = key
        self.root = root
        self.path = root / "ws"
        self.max_jobs = max_jobs
        self.jobs = 0
        self.builds = 0
        self.retired = False  # killed, or not fit to run another build
        self._lock = lock
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._trash = 0
        # What bubblewrap mounts in the cell's /tmp when pf's directories lie under it
        # (TMPDIR is /tmp): the mount points, and the directories it made above them.
        self._mounts = {self.path, _INSIDE_PROGRAM, *key[2]}
        self._above_mounts = {parent for path in self._mounts for parent in path.parents}
        # Those of them in a directory a job may write, as pf's side sees them once the
        # cell is up: (device, inode) by path inside. A job may rename one away and make a
        # look-alike in its place; only the identity shows it (see _empty).
        self._pinned: dict[Path, tuple[int, int]] = {}

    # Start ----------------------------------------------------------------------------

    def start(self, bwrap: str, uid: int | None) -> None:
        """Start the cell; raises SandboxError with bubblewrap's words when it cannot."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._socket = ours
        options = _isolated(bwrap, self.key[2], self.root / "tmp")
        options[1:1] = ["--as-pid-1"]
        workspace = str(self.path)
        options += [
            # /dev is bwrap's tmpfs, writable: read-only but for pf's /dev/shm.
            "--bind",
            str(self.root / "shm"),
            "/dev/shm",
            "--remount-ro",
            "/dev",
            "--ro-bind",
            str(PROGRAM),
            str(_INSIDE_PROGRAM),
            "--bind",
            workspace,
            workspace,
            "--remount-ro",
            "/",
            "--chdir",
            workspace,
            "--",
            str(_INSIDE_PROGRAM),
            str(theirs.fileno()),
        ]
        if uid is not None:
            drop = (
                [str(_CONFINE), f"--uid={uid}", "--core=0", "--"]
                if os.access(_CONFINE, os.X_OK)
                else [_SETPRIV, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
            )
            options = [*drop, *options]
        log = os.open(self.root / "log", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            self._process = subprocess.Popen(
                options,
                cwd="/",
                env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
            )
        except OSError as exc:
            raise SandboxError(f"cannot start a sandbox cell: {exc.strerror or exc}") from exc
        finally:
            os.close(log)
            theirs.close()
        ready, _, _ = select.select([ours], [], [], _START_TIMEOUT)
        answer = ours.recv(64, socket.MSG_DONTWAIT) if ready else b""
        if answer != b"ready":
            said = self._said()
            self.kill()
            raise SandboxError(f"a sandbox cell did not start: {said or 'no answer'}")
        self._pin()

    def _pin(self) -> None:
        for inside in self._mounts | self._above_mounts:
            for name, writable in zip(_WRITABLE, self._inside(), strict=True):
                if writable in inside.parents:
                    st = os.lstat(self.root / name / inside.relative_to(writable))
                    self._pinned[inside] = (st.st_dev, st.st_ino)

    def _inside(self) -> tuple[Path, Path, Path]:
        """Where the cell sees its writable directories (``_WRITABLE``'s order)."""
        return (self.path, Path("/tmp"), Path("/dev/shm"))

    def _said(self) -> str:
        """The last line bubblewrap or pf-cell wrote, for an error message."""
        try:
            lines = (self.root / "log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:500] if lines else ""

    # Steps ----------------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        limits: Limits,
        on_line: LineSink | None = None,
        cancel: threading.Event | None = None,
    ) -> Completed:
        """Run one confined step in the workspace, as :func:`pf.sandbox.run` would.

        Raises SandboxError (and kills the cell) when the cell fails rather than the step.
        """
        if not argv:
            raise SandboxError("nothing to run: empty command")
        if self.retired or self._socket is None:
            raise SandboxError("this sandbox cell was retired")
        body = _request(self.path, argv, inside_env(env), limits)
        started = time.monotonic()
        out_read, out_write = os.pipe2(os.O_CLOEXEC)
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        answer = _Answer(self)
        try:
            try:
                socket.send_fds(self._socket, [body], [null, out_write, err_write])
            except OSError as exc:
                raise SandboxError(f"the sandbox cell is gone: {self._said() or exc}") from exc
            finally:
                for fd in (null, out_write, err_write):
                    os.close(fd)
            captured = capture(argv, out_read, err_read, answer, limits, on_line, cancel, started)
        except BaseException:
            self.kill()
            raise
        finally:
            os.close(out_read)
            os.close(err_read)
        self.jobs += 1
        assert answer.code is not None
        return captured.completed(answer.code)

    def _ask(self, request: bytes) -> None:
        assert self._socket is not None
        self._socket.send(request)

    def _answer(self) -> str:
        assert self._socket is not None
        return self._socket.recv(128, socket.MSG_DONTWAIT).decode("ascii", "replace")

    # Between builds -------------------------------------------------------------------

    def reset(self, dispose: Dispose, keep: Sequence[str] = ()) -> bool:
        """Empty the workspace, /tmp and /dev/shm for the next build; False when the cell
        must not run another (retired, used up, or not emptied). The workspace's
        directories named in ``keep`` stay, emptied, with pf's mode, where they are
        directories: a link or a file in their place goes like anything else."""
        self.builds += 1
        if self.retired or self.jobs >= self.max_jobs or not self.alive():
            return False
        trash = self.root / f"trash-{self._trash}"
        self._trash += 1
        os.mkdir(trash, 0o700)
        moved = [0]
        try:
            kept = {self.path / name for name in keep}
            for name, inside in zip(_WRITABLE, self._inside(), strict=True):
                # A job may have changed the directory's mode: pf's own, back again.
                os.chmod(self.root / name, 0o700)
                if not self._empty(self.root / name, Path(inside), trash, moved, kept):
                    return False
        finally:
            dispose(trash)
        return True

    def _empty(
        self,
        directory: Path,
        inside: Path,
        trash: Path,
        moved: list[int],
        kept: Set[Path] = frozenset(),
    ) -> bool:
        """Move everything in ``directory`` (seen at ``inside`` in the cell) to ``trash``,
        but for the directories bubblewrap made in it to mount something on, and those
        ``kept``: those are emptied the same way, and a mount point itself is left (its
        content is the mount's). Renaming a mount point's parent would unmount it in the
        cell. False when something is left, or one of those directories is gone or
        replaced."""
        with os.scandir(directory) as entries:
            for entry in list(entries):
                seen = inside / entry.name
                if seen in self._mounts:
                    continue
                emptied = seen in self._above_mounts or seen in kept
                if emptied and not entry.is_symlink() and entry.is_dir():
                    # bubblewrap's mode, and pf's for a kept one, whatever a job set
                    os.chmod(entry.path, 0o755)
                    if not self._empty(Path(entry.path), seen, trash, moved):
                        return False
                    continue
                os.rename(entry.path, trash / str(moved[0]))
                moved[0] += 1
        with os.scandir(directory) as entries:
            left = {inside / entry.name for entry in entries}
        if not left <= self._mounts | self._above_mounts | kept:
            return False
        # Every pinned directory here is still the one bubblewrap made, not a look-alike.
        for seen, identity in self._pinned.items():
            if seen.parent == inside:
                try:
                    st = os.lstat(directory / seen.name)
                except FileNotFoundError:
                    return False
                if (st.st_dev, st.st_ino) != identity:
                    return False
        return True

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """Kill the cell whole: bubblewrap outside, and with pid 1 its whole namespace."""
        self.retired = True
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait()
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def close(self, dispose: Dispose) -> None:
        """Kill the cell and hand its directory to ``dispose``."""
        self.kill()
        os.close(self._lock)
        dispose(self.root)


class _Answer:
    """The end of a step as pf-cell reports it (see process.Ending)."""

    def __init__(self, cell: Cell) -> None:
        self.cell = cell
        self.code: int | None = None

    def fileno(self) -> int:
        assert self.cell._socket is not None
        return self.cell._socket.fileno()

    def ended(self) -> None:
        text = self.cell._answer()
        kind, _, rest = text.partition(" ")
        value, _, ipc = rest.partition(" ")
        if kind not in ("exit", "signal") or not value.isdigit() or not ipc.isdigit():
            said = self.cell._said() if not text else f"it answered {text[:60]!r}"
            raise SandboxError(f"the sandbox cell failed: {said or 'it closed'}")
        self.code = int(value) if kind == "exit" else -int(value)
        if int(ipc):
            # SysV IPC objects outlive the step in the cell's namespace: never reused.
            self.cell.retired = True

    def kill(self) -> None:
        try:
            self.cell._ask(b"K")
        except OSError:
            # It cannot be asked: killed whole, and the closed socket ends the wait.
            self.cell.kill()


class _Pool:
    """The cells of this process, idle ones kept per key (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[Key, list[Cell]] = {}
        self._live: set[Cell] = set()
        self._starting = 0
        self._launcher: ThreadPoolExecutor | None = None

    def acquire(
        self, settings: Settings, readonly: Sequence[Path], dispose: Dispose
    ) -> Cell | None:
        """An idle cell for ``readonly``, or a new one; None when the cap is reached and
        every cell is in use (the caller runs one bubblewrap per step)."""
        bwrap = _bwrap(settings)
        failure = probe(settings)
        if failure is not None:
            raise failure
        assert bwrap is not None
        uid = sandbox_uid(settings)
        paths = tuple(sorted(set(outside_system(readonly))))
        key: Key = (bwrap, uid, paths)
        cap = max(settings.jobs, settings.worker_concurrency)
        stale: list[Cell] = []
        found: Cell | None = None
        full = False
        with self._lock:
            cells = self._idle.get(key, [])
            while cells and found is None:
                cell = cells.pop()
                if cell.alive():
                    found = cell
                else:
                    stale.append(cell)
                    self._live.discard(cell)
            if found is None and len(self._live) + self._starting >= cap:
                victim = self._oldest_idle()
                if victim is None:
                    full = True
                else:
                    stale.append(victim)
                    self._live.discard(victim)
            if found is None and not full:
                self._starting += 1  # holds its place under the cap while it starts
            if self._launcher is None:
                self._launcher = ThreadPoolExecutor(1, "pf-cell-launcher")
                atexit.register(self.shutdown)
            launcher = self._launcher
        for cell in stale:
            cell.close(dispose)
        if found is not None:
            found.max_jobs = settings.sandbox_cell_jobs  # the caller's settings rule
            return found
        if full:
            return None
        try:
            cell = launcher.submit(_start, key, settings).result()
        finally:
            with self._lock:
                self._starting -= 1
        with self._lock:
            self._live.add(cell)
        return cell

    def _oldest_idle(self) -> Cell | None:
        for cells in self._idle.values():
            if cells:
                return cells.pop(0)
        return None

    def release(self, cell: Cell, dispose: Dispose, keep: Sequence[str] = ()) -> None:
        reusable = False
        try:
            reusable = cell.reset(dispose, keep)
        finally:
            with self._lock:
                if reusable:
                    self._idle.setdefault(cell.key, []).append(cell)
                else:
                    self._live.discard(cell)
            if not reusable:
                cell.close(dispose)

    def shutdown(self) -> None:
        """Kill every cell and remove its directory (pf is exiting)."""
        with self._lock:
            cells = list(self._live)
            self._live.clear()
            self._idle.clear()
        for cell in cells:
            cell.close(remove)


def _start(key: Key, settings: Settings) -> Cell:
    """Make a cell's directory and start it; runs on the launcher thread."""
    bwrap, uid, readonly = key
    if not os.access(PROGRAM, os.X_OK):
        raise SandboxUnavailable(f"{PROGRAM} is not built", "run scripts/setup.sh")
    base = root()
    sweep(base)
    directory = Path(tempfile.mkdtemp(prefix=CELL_PREFIX, dir=base))
    os.chmod(directory, 0o711)
    lock = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    fcntl.flock(lock, fcntl.LOCK_SH)
    for name in _WRITABLE:
        os.mkdir(directory / name, 0o700)
        if uid is not None:
            os.chown(directory / name, uid, uid)
    cell = Cell(key, directory, lock, settings.sandbox_cell_jobs)
    try:
        check_reachable((cell.path, PROGRAM, *readonly), uid)
        cell.start(bwrap, uid)
    except BaseException:
        cell.close(remove)
        raise
    return cell


_pool = _Pool()


def available() -> bool:
    """Whether pf-cell is built (scripts/setup.sh builds it beside pf-confine)."""
    return os.access(PROGRAM, os.X_OK)


acquire = _pool.acquire
release = _pool.release
shutdown = _pool.shutdown
