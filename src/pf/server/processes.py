"""Several API processes on one port (``pf serve --workers N``, PF_API_WORKERS): a small
supervisor that forks them, replaces one that dies, and drains them all on SIGTERM.

Strategy. The supervisor does once what run.prepare does (check the store and the
exposure, bind the socket, log), with the server stack imported but no store open, no
thread and no event loop, then forks N API processes that accept on the one listening
socket: the kernel gives each connection to one of them. A process that dies is forked
again at once (a second later if it and the one before it each lived under a second, so
a process that cannot start does not spin); one of the first N that cannot start at all
(exit 1) stops pf serve. SIGTERM or SIGINT is passed to every process, each drains as a
single pf serve does (in-flight requests finish, WebSockets close, builds get
PF_SHUTDOWN_GRACE), and the supervisor exits 0 once all have exited cleanly. Signals are
blocked in the supervisor and read with sigtimedwait, so no handler runs between a fork
and its bookkeeping.

Why not uvicorn's own process manager: it starts its processes by spawning fresh
interpreters that load the app from an import string (the command line's options would
have to travel through the environment), and it has no hook where a dead process's
metrics can be marked dead.

Metrics: prometheus_client's multiprocess mode. PROMETHEUS_MULTIPROC_DIR names a private
folder made empty for this run and set before prometheus_client is first imported, so
every process keeps its values in files there (one set per pid); /metrics and
/api/metrics read them all (server/metrics.py), and a dead process's live gauges are
dropped by mark_process_dead. Counters keep a dead process's counts.

N > 1 needs shared mode (a PostgreSQL PF_DATABASE_URL and PF_REDIS_URL): each process
runs its own build service, and on one SQLite file with an in-process queue they would
each run builds and crash recovery against the others' records.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pf.errors import PfError, UsageError

if TYPE_CHECKING:
    from pf.config import Settings
    from pf.server.options import ServeOptions

log = logging.getLogger("pf.server")

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus_client at import
SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
QUICK_DEATH = 1.0  # a process that lived less than this is forked again after as long
STARTUP_FAILED = 1  # run.serve_process's code when uvicorn never started
PR_SET_PDEATHSIG = 1  # <sys/prctl.h>
KILL_AFTER = 10.0  # seconds past the drain's own deadlines before stragglers are killed


def check_workers(settings: Settings) -> None:
    """Refuse several API processes outside shared mode, in one line that says why."""
    count = settings.api_workers
    if count > 1 and not settings.shared:
        raise UsageError(
            f"{count} API processes (--workers / PF_API_WORKERS) need shared mode: set "
            "PF_DATABASE_URL to a PostgreSQL URL and PF_REDIS_URL, else each process would "
            "run its own builds and crash recovery against one SQLite file"
        )


def serve(settings: Settings, options: ServeOptions, *, insecure_no_auth: bool = False) -> int:
    """Run ``settings.api_workers`` API processes until SIGTERM/SIGINT; 0 once all stopped
    cleanly, 1 when one could not start."""
    check_workers(settings)
    folder = Path(tempfile.mkdtemp(prefix="pf-metrics-"))
    try:
        if "prometheus_client" in sys.modules:
            raise PfError(
                "prometheus_client was imported before its multiprocess folder was set",
                hint="this is a bug in pf, please report it",
            )
        os.environ[MULTIPROC_VARIABLE] = str(folder)
        # Imported only now: prometheus_client chooses where values live as it loads.
        from pf.server import run

        sock = run.prepare(settings, options, insecure_no_auth=insecure_no_auth)
        from pf.engine.vitals import sample_memory

        # The supervisor is a pf process too: its memory, once (it only waits after this).
        sample_memory()

        def work() -> int:
            return run.serve_process(settings, options, sock, insecure_no_auth=insecure_no_auth)

        supervisor = Supervisor(settings.api_workers, work, folder, _drain_deadline(settings))
        try:
            return supervisor.run()
        finally:
            sock.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _drain_deadline(settings: Settings) -> float:
    # uvicorn waits up to the grace for open connections, then the lifespan gives running
    # builds the grace again.
    return 2 * settings.shutdown_grace + KILL_AFTER


@dataclass
class _Process:
    slot: int
    pid: int
    started: float
    first: bool  # one of the first N: if it cannot start, pf serve cannot


@dataclass
class Supervisor:
    """Forks ``count`` processes that each run ``work`` and exit with its code, and keeps
    that many running until it is told to stop."""

    count: int
    work: Callable[[], int]
    metrics: Path
    drain_deadline: float
    processes: dict[int, _Process] = field(default_factory=dict)  # by pid
    due: dict[int, float] = field(default_factory=dict)  # slot -> when to fork it again
    quick: set[int] = field(default_factory=set)  # slots whose last process died young

    def run(self) -> int:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        try:
            for slot in range(self.count):
                self._fork(slot, first=True)
            while True:
                info = signal.sigtimedwait(SIGNALS, self._timeout())
                if info is not None and info.si_signo != signal.SIGCHLD:
                    log.info(
                        "stopping the API processes",
                        extra={"signal": signal.Signals(info.si_signo).name},
                    )
                    # SIGTERM even for a Ctrl-C: the terminal has sent the processes its
                    # SIGINT already, and a second SIGINT makes uvicorn skip the drain.
                    return self._drain(signal.SIGTERM)
                if not self._reap():
                    log.error("an API process could not start: stopping pf serve")
                    self._drain(signal.SIGTERM)
                    return STARTUP_FAILED
                self._fork_due()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)

    def _timeout(self) -> float:
        if not self.due:
            return 3600.0
        return max(0.0, min(self.due.values()) - time.monotonic())

    def _fork(self, slot: int, *, first: bool = False) -> None:
        if threading.active_count() != 1:
            # A fork copies one thread: a lock another thread held stays locked forever.
            raise PfError(
                "pf serve's supervisor started a thread before forking",
                hint="this is a bug in pf, please report it",
            )
        supervisor = os.getpid()
        pid = os.fork()
        if pid == 0:
            self._child(supervisor)
        self.processes[pid] = _Process(slot, pid, time.monotonic(), first)
        log.info("API process started", extra={"pid": pid, "slot": slot})

    def _child(self, supervisor: int) -> NoReturn:
        code = STARTUP_FAILED
        try:
            for number in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(number, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            _drain_with(supervisor)
            code = self.work()
        except SystemExit as stop:
            # uvicorn exits this way when the app's start-up failed (and has said why).
            code = STARTUP_FAILED if stop.code else 0
        except PfError as error:
            log.error(f"the API process could not start: {error}", extra={"pid": os.getpid()})
        except BaseException:
            log.exception("the API process failed", extra={"pid": os.getpid()})
        finally:
            logging.shutdown()
            # Never return into the supervisor's code (nor run its exit handlers).
            os._exit(code)

    def _reap(self) -> bool:
        """Collect every exited process and schedule its replacement; False when one of
        the first N could not start."""
        from prometheus_client import multiprocess

        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return True
            process = self.processes.pop(pid, None)
            if process is None:
                continue
            multiprocess.mark_process_dead(pid, str(self.metrics))  # type: ignore[no-untyped-call]
            code = os.waitstatus_to_exitcode(status)
            if process.first and code == STARTUP_FAILED:
                return False
            lived = time.monotonic() - process.started
            log.warning(
                "an API process ended; starting another",
                extra={"pid": pid, "exit": _describe(code), "lived": round(lived, 3)},
            )
            # Twice in a row quickly: it may not be able to start, so it is not rushed.
            quick = lived < QUICK_DEATH
            delay = QUICK_DEATH if quick and process.slot in self.quick else 0.0
            if quick:
                self.quick.add(process.slot)
            else:
                self.quick.discard(process.slot)
            self.due[process.slot] = time.monotonic() + delay

    def _fork_due(self) -> None:
        now = time.monotonic()
        for slot, when in sorted(self.due.items()):
            if when <= now:
                del self.due[slot]
                self._fork(slot)

    def _drain(self, number: int) -> int:
        """Pass the signal on and wait for every process to exit; 0 when all exited 0."""
        self.due.clear()
        for pid in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, number)
        clean = True
        deadline = time.monotonic() + self.drain_deadline
        killed = False
        while self.processes:
            left = deadline - time.monotonic()
            if left <= 0 and not killed:
                for pid in self.processes:
                    log.error("an API process did not stop in time: killing it", extra={"pid": pid})
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                killed = True
            info = signal.sigtimedwait(SIGNALS, left if left > 0 else 1.0)
            if info is not None and info.si_signo != signal.SIGCHLD:
                # A second Ctrl-C: uvicorn then stops without waiting for connections.
                for pid in self.processes:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, info.si_signo)
                continue
            while self.processes:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    self.processes.clear()
                    break
                if pid == 0:
                    break
                if self.processes.pop(pid, None) is not None:
                    code = os.waitstatus_to_exitcode(status)
                    # uvicorn raises the signal it caught again once it has drained.
                    clean = clean and code in (0, -signal.SIGTERM, -signal.SIGINT)
                    log.info("API process stopped", extra={"pid": pid, "exit": _describe(code)})
        return 0 if clean else 1


def _drain_with(supervisor: int) -> None:
    """Get SIGTERM (and so drain) if the supervisor dies, even by SIGKILL: an API process
    left behind would hold the port."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
