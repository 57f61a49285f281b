"""pf serve's compiles in a process of their own, so their Python never holds the API's GIL.

Strategy: one child interpreter (``python -m pf.engine.buildproc FD``) runs
``compile_sources`` for the build service, up to PF_JOBS at once on threads of its own,
to the same action cache on disk. Queueing, records, events, logs and cancellation
stay the service's: it hands a compile over with ``BuildProcess.begin``, and its end
comes back to a callback (no thread waits for a compile in the child). Over one socket
pair
(``multiprocessing.connection``: a length-prefixed pickle a message) the parent sends
``compile`` and ``cancel``; the child answers with a compile's output lines, its phases,
its end (the BuildResult, or the error it raised) and its log records, which the
parent logs under their own logger names. A reader thread in the parent hands each to
its compile's callbacks, so a line is recorded as it arrives, and a compile's end is
recorded on that thread too (for ``begin``).

Handed over is not started. The child runs PF_JOBS compiles at once and keeps the
rest in order; a compile's ``on_start`` runs with its first message from the child (its
first step's phase, a line, or its end), so a build is shown running only from then,
and is given the time it started there (every message of a compile carries it). A
step's phase waits ``PHASE_HOLD`` in the child: the next step's replaces it, a line of
the compile sends it first, a failure too (the record keeps the step a build failed
in), and a success drops it. So a compile whose steps each end within the hold
crosses as one message, its end: each step's message cost the parent a wake-up of its
reader, a record of the build's state and an event, all made stale by the next. The
hold is a tenth of a second, about the shortest change a person watching can see: a
C compile's steps (30-40 ms each) no longer cross on their own, which took a sixth of
the API process's CPU for such a build.
The service hands over more builds than PF_JOBS (``LOOKAHEAD`` per job) so that the
child never waits for the parent between two compiles: with just PF_JOBS handed over,
each compile thread sat idle through the parent's end of one build and start of the
next, about as long as a small compile itself. ``hold`` (pf serve stopping) makes the
child start nothing more: what waits there comes back as Unstarted, and the service
keeps it queued for its next start.

Why a process: with every compile's bookkeeping (keys, the single-flight lock, the
sandbox cell's protocol, the resident assembler, the blob and manifest stores) on the
API process's GIL, pf serve ran one core of compiles however many cores it had; the
event loop and the compile threads took turns.

Lifetime: the child starts with the service (``start``: the first compile would
otherwise wait for its Python to import pf) and ends when the parent closes the socket,
or dies: the child reads the end of the socket, cancels what it runs (each compile
kills its process group, as on a cancel) and exits. It ignores SIGINT and SIGTERM,
which a terminal or a service manager sends to the whole group: pf serve's graceful
stop decides when its builds end. A child that dies fails the compiles it held with
BuildProcessLost and the next compile starts a new one.

Priority: the child runs ``NICENESS`` below pf serve, and so do the compilers and
assemblers it starts. With every core busy, the API process's threads (a submission's
validation, the write of its record, the events) run first, and the compiles take what
they leave: a submission's answer no longer waits behind a compile's turn on a core.

Only what pickles crosses: requests (each with the action the service's lookup keyed,
so the child does not plan and key it again: a fifth of its CPU for a WAT compile),
results and PfErrors (errors.py makes every PfError pickle with its fields); any other
exception is logged with its traceback in the child (which reaches pf serve's log) and
crosses as itself or as its repr. Imports engine.compile, engine.cache,
engine.diskspace, engine.keys, toolchains, config and errors; never server.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from pf.config import Settings
from pf.engine.cache import ActionCache
from pf.engine.compile import BuildResult, compile_sources
from pf.engine.diskspace import is_disk_full
from pf.engine.keys import Action
from pf.errors import BuildCancelled, PfError
from pf.toolchains import CompileRequest

log = logging.getLogger("pf.engine")

# How long a closing parent waits for the child to end its compiles and exit.
_EXIT_WAIT = 10.0
# Builds handed to the child per compile it runs at once: one running, one next.
LOOKAHEAD = 2
# How long the child holds a compile's step before telling the parent it started.
PHASE_HOLD = 0.1


# How much lower than pf serve's the build process's priority is (nice(2)): a compile
# takes the cores the API process leaves, and with them all taken it still runs, at a
# tenth of the API process's share.
NICENESS = 10


class Unstarted(Exception):
    """The child was told to hold before it started this compile: it never ran."""


class BuildProcessLost(PfError):
    """The process compiling for pf serve ended while it held this compile."""

    code = "build-process-lost"

    def __init__(self, detail: str) -> None:
        super().__init__(
            f"pf serve's build process ended while compiling ({detail})",
            hint="build again: a new build process starts; if it keeps ending, see pf serve's log",
        )


@dataclass
class _Call:
    end: Callable[[BuildResult | None, BaseException | None], None]
    on_start: Callable[[float, bool], None] | None
    on_line: Callable[[str, str], None] | None
    on_phase: Callable[[str, int], None] | None
    cancel: threading.Event | None
    cancel_sent: bool = False
    started: bool = False


class _Child:
    """One child process and its socket; ``calls`` are the compiles it holds."""

    def __init__(self, settings: Settings) -> None:
        parent, child = socket.socketpair()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pf.engine.buildproc", str(child.fileno())],
                pass_fds=(child.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        finally:
            child.close()
        self.socket = parent
        self.conn = Connection(os.dup(parent.fileno()))
        self.calls: dict[int, _Call] = {}
        self.lock = threading.Lock()  # calls, sends, ``alive`` and ``used``
        self.alive = True
        self.used = False  # handed a compile: closing it then lets it cancel and exit
        self.conn.send(settings)

    def ended(self) -> str:
        code = self.process.poll()
        if code is None:
            return "its socket closed"
        if code < 0:
            return f"killed by signal {-code}"
        return f"exit code {code}"


class BuildProcess:
    """The parent's side: ``begin`` from any thread, ``close`` once at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The running child's pid, or None before it started or after it died."""
        child = self._child
        return child.process.pid if child is not None and child.alive else None

    def start(self) -> None:
        """Start the child now, not with the first compile: its Python takes a tenth of
        a second or more to import pf, which that compile would wait for. Raises
        BuildProcessLost once closed."""
        self._running()

    def _running(self) -> _Child:
        with self._lock:
            if self._closed:
                raise BuildProcessLost("pf serve is shutting down")
            if self._child is None or not self._child.alive:
                child = _Child(self.settings)
                threading.Thread(
                    target=self._read, args=(child,), name="pf-build-reader", daemon=True
                ).start()
                self._child = child
            return self._child

    def begin(
        self,
        request: CompileRequest,
        on_end: Callable[[BuildResult | None, BaseException | None], None],
        *,
        on_start: Callable[[float, bool], None] | None = None,
        on_line: Callable[[str, str], None] | None = None,
        on_phase: Callable[[str, int], None] | None = None,
        cancel: threading.Event | None = None,
        missed: bool = False,
        action: Action | None = None,
    ) -> None:
        """``compile_sources`` in the child, with the same keywords; ``on_end(result,
        error)`` once it ended (the same result, or the error it raised; Unstarted if the
        child was told to ``hold`` first), on the thread that reads the child.
        ``on_start`` gets the time (``time.time()``) it started there, once known (with
        its first line, phase or end, before that is handed on), and whether that first
        message is its end (its start need not be recorded on its own); a step's
        ``on_phase`` may come late or not at all (see the module's docstring). A cancel
        must be forwarded (``forward_cancels``). Raises BuildProcessLost, without
        calling ``on_end``, when no child can take it."""
        call = _Call(on_end, on_start, on_line, on_phase, cancel)
        number = next(self._ids)
        message = ("compile", number, request, missed, action)
        child = self._running()
        if not self._send(child, message, number, call):
            # It died between being found running and this send: once more, in a new one.
            child = self._running()
            if not self._send(child, message, number, call):
                raise BuildProcessLost(child.ended())

    @staticmethod
    def _send(
        child: _Child, message: tuple[Any, ...], number: int = -1, call: _Call | None = None
    ) -> bool:
        """Send ``message`` (registering ``call``); False if the child is known dead. A
        broken socket counts as sent: the reader is about to end the child's calls."""
        with child.lock:
            if not child.alive:
                return False
            if call is not None:
                child.calls[number] = call
                child.used = True
            try:
                child.conn.send(message)
            except OSError:
                pass
            except BaseException:
                child.calls.pop(number, None)
                raise
        return True

    def _read(self, child: _Child) -> None:
        while True:
            try:
                message = child.conn.recv()
            except (EOFError, OSError):
                break
            except Exception:
                log.exception("pf: a message from the build process could not be read")
                break
            try:
                self._deliver(child, message)
            except Exception:
                log.exception("pf: a message from the build process could not be handled")
        self._lost(child)

    @staticmethod
    def _deliver(child: _Child, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "log":
            _, name, level, text = message
            logging.getLogger(name).log(level, "%s", text)
            return
        with child.lock:
            call = child.calls.get(message[1])
            if kind in ("done", "failed", "unstarted", "cancelled"):
                child.calls.pop(message[1], None)
        if call is None:
            return
        if kind == "unstarted" or kind == "cancelled":
            call.end(None, Unstarted() if kind == "unstarted" else BuildCancelled("the build"))
            return
        if not call.started:
            # Started is implied by a compile's first message (its first step, or its
            # end): a message of its own cost each build a wake-up of this thread.
            call.started = True
            if call.on_start is not None:
                call.on_start(message[-1], kind in ("done", "failed"))
        if kind == "line" and call.on_line is not None:
            call.on_line(message[2], message[3])
        elif kind == "phase" and call.on_phase is not None:
            call.on_phase(message[2], message[3])
        elif kind == "done":
            call.end(message[2], None)
        elif kind == "failed":
            call.end(None, message[2])

    def _lost(self, child: _Child) -> None:
        with child.lock:
            child.alive = False
            calls, child.calls = child.calls, {}
        child.conn.close()
        child.socket.close()
        if not self._closed:
            # Whatever ended the socket, a child without one can only be ended.
            child.process.kill()
        child.process.wait()
        detail = child.ended()
        if calls:
            log.error("pf: the build process ended (%s) during %d compiles", detail, len(calls))
        for call in calls.values():
            try:
                call.end(None, BuildProcessLost(detail))
            except Exception:
                log.exception("pf: a compile lost with the build process could not be ended")

    def forward_cancels(self) -> None:
        """Tell the child of every compile whose cancel is set: whoever sets one calls
        this (nothing else looks at it), so a compile that waits there never starts."""
        child = self._child
        if child is None:
            return
        with child.lock:
            if not child.alive:
                return
            for number, call in child.calls.items():
                if call.cancel is not None and call.cancel.is_set() and not call.cancel_sent:
                    call.cancel_sent = True
                    with contextlib.suppress(OSError):  # the reader ends the calls
                        child.conn.send(("cancel", number))

    def hold(self) -> None:
        """Start no more compiles: those waiting in the child raise Unstarted, and so
        does any handed over from now on."""
        with self._lock:
            child = self._child
        if child is not None:
            self._send(child, ("hold",))

    def close(self) -> None:
        """End the child: it cancels what it still runs, then exits (killed if it hangs)."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
        if child is None:
            return
        with child.lock:
            used = child.used
            if child.alive:
                # Wakes the reader, and the child reads the end of its socket.
                child.socket.shutdown(socket.SHUT_RDWR)
        if not used:
            # Never handed a compile: it has nothing to cancel or wait for, and may still
            # be importing pf, which a stop right after a start would wait out.
            child.process.kill()
        try:
            child.process.wait(_EXIT_WAIT)
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()


# The child ----------------------------------------------------------------------------


class _Forward(logging.Handler):
    """Sends the child's log records to the parent, which logs them as its own."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None]) -> None:
        super().__init__()
        self.send = send

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        try:
            self.send(("log", record.name, record.levelno, text))
        except OSError:
            self.handleError(record)


class _Sender:
    """The child's way out: one message at a time, in order, and each compile's latest
    step held back ``hold`` seconds (see the module's docstring)."""

    def __init__(self, conn: Connection, hold: float = PHASE_HOLD) -> None:
        self.conn = conn
        self.hold = hold
        self._cond = threading.Condition()  # held while a message is sent
        # A compile's phase message not sent yet, by number, with when it is due.
        self._held: dict[int, tuple[float, tuple[Any, ...]]] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._flush, name="pf-phases", daemon=True)
        self._thread.start()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._cond:
            self.conn.send(message)

    def phase(self, number: int, message: tuple[Any, ...]) -> None:
        with self._cond:
            if not self._held:
                self._cond.notify()  # the flusher waits for a first one without a timeout
            self._held[number] = (time.monotonic() + self.hold, message)

    def of_compile(self, number: int, message: tuple[Any, ...], *, drop_held: bool) -> None:
        """Send a line or the end of compile ``number``, after its held phase unless
        ``drop_held`` (its success, which makes that phase stale)."""
        with self._cond:
            held = self._held.pop(number, None)
            if held is not None and not drop_held:
                self.conn.send(held[1])
            self.conn.send(message)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _flush(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._held:
                    self._cond.wait()
                    continue
                now = time.monotonic()
                wait = min(due for due, _ in self._held.values()) - now
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                for number, (due, message) in list(self._held.items()):
                    if due <= now:
                        del self._held[number]
                        try:
                            self.conn.send(message)
                        except OSError:
                            return  # the parent is gone: the main loop reads the end and exits


def _serve(conn: Connection) -> None:
    settings: Settings = conn.recv()
    cache = ActionCache.for_settings(settings)
    sender = _Sender(conn)
    send = sender.send
    # Compiles handed over and not started, and those running, by number: each is in
    # one of them until it is answered, under ``state``.
    state = threading.Lock()
    waiting: dict[int, threading.Event] = {}
    running: dict[int, threading.Event] = {}
    holding = False

    root = logging.getLogger()
    root.handlers[:] = [_Forward(send)]
    root.setLevel(logging.INFO)

    def run(number: int, request: CompileRequest, missed: bool, action: Action | None) -> None:
        with state:
            cancel = waiting.pop(number, None)
            if cancel is None:
                return  # answered while it waited: cancelled, or held
            running[number] = cancel
        started = time.time()
        try:
            result = compile_sources(
                request,
                settings,
                cache=cache,
                on_line=lambda stream, text: sender.of_compile(
                    number, ("line", number, stream, text, started), drop_held=False
                ),
                on_phase=lambda label, index: sender.phase(
                    number, ("phase", number, label, index, started)
                ),
                cancel=cancel,
                missed=missed,
                action=action,
            )
        except PfError as error:
            sender.of_compile(number, ("failed", number, error, started), drop_held=False)
        except Exception as error:
            if not is_disk_full(error):
                log.exception("pf: a compile failed inside pf's build process")
            failed = ("failed", number, _portable(error), started)
            sender.of_compile(number, failed, drop_held=False)
        else:
            sender.of_compile(number, ("done", number, result, started), drop_held=True)
        finally:
            with state:
                running.pop(number, None)

    def answer(kind: str, numbers: list[int]) -> None:
        for number in numbers:
            send((kind, number))

    # Its queue keeps what waits in the order it was handed over.
    with ThreadPoolExecutor(settings.jobs, thread_name_prefix="pf-build") as pool:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "compile":
                _, number, request, missed, action = message
                with state:
                    if not holding:
                        waiting[number] = threading.Event()
                if holding:
                    answer("unstarted", [number])
                else:
                    pool.submit(run, number, request, missed, action)
            elif kind == "cancel":
                # A compile that waits is answered now, not once a thread is free.
                with state:
                    event = running.get(message[1])
                    unstarted = waiting.pop(message[1], None) is not None
                if event is not None:
                    event.set()
                if unstarted:
                    answer("cancelled", [message[1]])
            elif kind == "hold":
                with state:
                    holding = True
                    held, waiting = list(waiting), {}
                answer("unstarted", held)
        # The parent is gone or closing: nobody waits for these compiles any more.
        with state:
            waiting.clear()
            for event in running.values():
                event.set()
    sender.close()


def _portable(error: Exception) -> Exception:
    """``error`` if it survives pickling (an OSError keeps its errno: a full disk stays
    a full disk), else a RuntimeError of its repr; its traceback is logged here."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(repr(error))
    return error


def main(argv: list[str]) -> int:
    # Before any thread starts (a thread takes its creator's priority, a process its
    # parent's): the compiles, their tools and assemblers yield to the API process when
    # the cores are all busy, so a submission waits for its record, not for a compile.
    os.nice(NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    conn = Connection(int(argv[0]))
    try:
        _serve(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
