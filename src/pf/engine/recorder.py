"""The writer thread: build records, log lines and events, batched into one ordered stream.

Strategy: every change a build goes through after its submission (record upserts, log
lines, events) is appended to one queue, in the order it happened. A single thread
drains the queue in batches: it writes a batch's records and lines in one transaction
(never one per line), then publishes the batch's events, turning runs of one build's log
lines into ``build_log`` events placed where those lines fell. So a client that sees
``build_completed`` has seen every log line before it, and finds them all in the store.
Every item is due by a time of its own: an urgent one (a submission, a build's end) at
once, a log line ``interval`` (50 ms) after it came, a running build's state (its
running and progress rows, with their events) ``progress_interval`` (250 ms) after. A
batch is cut when the first item is due, or when 200 lines are waiting. So the running,
progress and end states of a compile shorter than a quarter of a second go out in one
transaction, with one publication, rather than two or three (the last row of a build in
a batch is the one written): for a 75 ms C compile, that was a fifth of the API
process's CPU for it. And a batch is cut no sooner than ``gather`` (5 ms) after the one
before: under a flood of small compiles, submissions and ends come every fraction of a
millisecond, each urgent, and the writer went round for three or four builds at a time
(a transaction, a publication, a wake-up of the event loop and of every submitter
waiting); waiting out the rest of 5 ms gathers what comes meanwhile into the batch. An
idle writer's first batch is cut at once, so a lone submission waits for nothing. A
longer build's progress is at most a quarter of a second late, its log lines at most
50 ms. When another build's end cuts the batch, a build none of whose waiting items is
due yet keeps them (rows, lines and events, in order) waiting for the next batch: with
PF_JOBS builds ending in turn, a short compile's start would otherwise be written in
its neighbour's batch and its end in the next. Nothing is kept
back from a batch holding a submission (a queued row, whose submitter waits for
everything queued before its answer: ``settled``), one of 200 lines, while a ``flush``
waits, or when the writer stops.

A failing database does not stop the events. One that does not answer (StoreUnavailable:
stopped, unreachable, locked) loses nothing accepted: the batch's records and lines are
held and written again, before anything newer, every ``RETRY_MIN``..``RETRY_MAX``
seconds (doubling) until it answers, so a PostgreSQL restart costs the history nothing.
What is held counts in the backlog, so the service stops taking new builds while it
grows (``max_backlog``); only a stop while the database is still down loses it (logged).
A batch the database refuses (a constraint, a full disk) is logged as lost: written
again, it would fail again. Imports store, engine.events and errors only.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pf.engine.events import Bus, Event, build_log
from pf.errors import StoreError
from pf.store.db import StoreUnavailable
from pf.store.history import Store
from pf.store.logs import LogLine
from pf.store.record import QUEUED, BuildRecord

log = logging.getLogger("pf.engine")

FLUSH_INTERVAL = 0.05
PROGRESS_INTERVAL = 0.25
FLUSH_LINES = 200
GATHER = 0.005
RETRY_MIN = 0.25
RETRY_MAX = 5.0


@dataclass(frozen=True, slots=True)
class _Item:
    """One queued change: its place in the queue, what it is, and when it is due."""

    at: int  # the number of items queued before it
    kind: str  # row, line or event
    value: Any
    urgent: bool
    due: float  # time.monotonic() by which it is written


def _build_of(item: _Item) -> str | None:
    if item.kind == "row":
        return str(item.value.id)
    if item.kind == "line":
        return str(item.value.build_id)
    build_id = item.value.get("buildId")
    return build_id if isinstance(build_id, str) else None


@dataclass(frozen=True)
class _Chore:
    every: float
    func: Callable[[], object]


class Recorder:
    """Owns all writes to the store once the service runs; publishes events after them."""

    def __init__(
        self,
        store: Store,
        bus: Bus,
        interval: float = FLUSH_INTERVAL,
        progress_interval: float = PROGRESS_INTERVAL,
        max_lines: int = FLUSH_LINES,
        max_backlog: int = 0,
        gather: float = GATHER,
    ) -> None:
        self.store = store
        self.bus = bus
        self.interval = interval
        self.progress_interval = progress_interval
        self.max_lines = max_lines
        self.gather = gather
        self._last_cut = -math.inf  # time.monotonic() when the last batch was cut
        # Items waiting for the writer past which the service takes no new builds (0: no
        # bound); nothing already accepted is ever dropped for it.
        self.max_backlog = max_backlog
        self._items: list[_Item] = []
        self._lines = 0
        self._urgent = False
        self._first_due = 0.0  # the earliest due time of the items waiting
        self._cond = threading.Condition()
        self._enqueued = 0
        # Every item queued before this one is written (or held for a retry): items kept
        # back for the next batch hold it at their place.
        self._written = 0
        self._flush_to = 0  # flush() waits until _written reaches this: nothing kept back
        self._stopping = False
        self._ended = False  # the writer finished (stop): nothing more will be written
        self._thread: threading.Thread | None = None
        self._chores: list[tuple[_Chore, list[float]]] = []
        self.failures = 0
        # Written by the writer thread only: what a failed write left to write again, a
        # build's latest record once (the last write of a build wins), and every line.
        self._held_rows: dict[str, BuildRecord] = {}
        self._held_lines: list[LogLine] = []
        self._retry_at = 0.0
        self._retry_wait = RETRY_MIN
        self._held = 0  # len(_held_rows) + len(_held_lines), read under _cond
        # settled() callers: (items enqueued when it was called, its loop, its future).
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def start(self) -> None:
        if self._thread is None:
            self._ended = False
            self._thread = threading.Thread(target=self._loop, name="pf-recorder", daemon=True)
            self._thread.start()

    def every(self, seconds: float, func: Callable[[], object]) -> None:
        """Run ``func`` on the writer thread every ``seconds`` (first run after one period)."""
        self._chores.append((_Chore(seconds, func), [time.monotonic() + seconds]))

    def _put(self, *entries: tuple[str, Any, bool]) -> None:
        """Queue ``(kind, item, urgent)`` entries, in order, under one hold of the lock."""
        now = time.monotonic()
        with self._cond:
            # The writer sleeps until the earliest due time it knew: woken when that moves.
            known = earliest = self._first_due if self._items else math.inf
            for kind, item, urgent in entries:
                if urgent:
                    due = now
                else:
                    due = now + (self.interval if kind == "line" else self.progress_interval)
                earliest = min(earliest, due)
                self._items.append(_Item(self._enqueued, kind, item, urgent, due))
                self._enqueued += 1
                if kind == "line":
                    self._lines += 1
                self._urgent = self._urgent or urgent
            self._first_due = earliest
            if earliest < known or self._lines >= self.max_lines:
                self._cond.notify_all()

    @property
    def backlog(self) -> int:
        """Records, lines and events waiting for the writer, and those held for a retry."""
        return len(self._items) + self._held

    def behind(self) -> bool:
        """Whether the writer has fallen ``max_backlog`` items behind."""
        return 0 < self.max_backlog <= self.backlog

    def record(self, row: BuildRecord, event: Event | None = None, *, urgent: bool = True) -> None:
        """Store ``row`` and then publish ``event`` (if any). An event that is not
        ``urgent`` (a running build's state) waits up to ``progress_interval``, or for an
        urgent item of its build behind it (see the module's docstring for another build's)."""
        if event is None:
            self._put(("row", row, False))
        else:
            self._put(("row", row, urgent), ("event", event, urgent))

    def line(self, line: LogLine) -> None:
        self._put(("line", line, False))

    def event(self, event: Event) -> None:
        self._put(("event", event, True))

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Wait until everything queued so far is written (or held for a retry) and published."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            target = self._enqueued
            self._flush_to = max(self._flush_to, target)
            self._urgent = True
            self._cond.notify_all()
            while self._written < target:
                if self._thread is None or not self._thread.is_alive():
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    async def settled(self) -> None:
        """Wait, without blocking the event loop, until everything queued so far is written
        (or held for a retry) and published: a submission is answered only once its record
        is. All that wait meanwhile ride on the writer's next batch, one transaction."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._written >= self._enqueued or self._thread is None or self._ended:
                return
            self._waiters.append((self._enqueued, loop, future))
            self._urgent = True
            self._cond.notify_all()
        await future

    def _release(self) -> None:
        """Writer thread, under _cond: resolve the settled() waits now written, one
        call into each loop per batch."""
        if not self._waiters:
            return
        ready: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        waiting = []
        for target, loop, future in self._waiters:
            if target <= self._written or self._ended:
                ready.setdefault(loop, []).append(future)
            else:
                waiting.append((target, loop, future))
        self._waiters = waiting
        for loop, futures in ready.items():
            try:
                loop.call_soon_threadsafe(_resolve, futures)
            except RuntimeError:  # that loop is closed: nobody waits there any more
                pass

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _due(self) -> float | None:
        """Seconds until the pending batch is due (0: now), None when nothing waits."""
        if not self._items:
            if self._held and not self._stopping:
                return max(0.0, self._retry_at - time.monotonic())
            return None
        if self._urgent or self._stopping or self._lines >= self.max_lines:
            return 0.0
        return max(0.0, self._first_due - time.monotonic())

    def _next_chore(self) -> float | None:
        if not self._chores:
            return None
        return max(0.0, min(when[0] for _, when in self._chores) - time.monotonic())

    def _loop(self) -> None:
        while True:
            final = False
            with self._cond:
                while True:
                    due = self._due()
                    if due == 0.0:
                        break
                    if self._stopping and not self._items:
                        break
                    chore = self._next_chore()
                    if chore == 0.0:
                        break
                    waits = [t for t in (due, chore) if t is not None]
                    self._cond.wait(min(waits) if waits else None)
                if self._stopping and not self._items:
                    final = True
                gather = 0.0 if self._stopping else self._last_cut + self.gather - time.monotonic()
            if gather > 0:
                # Not woken by what comes meanwhile: it joins this batch.
                time.sleep(gather)
            with self._cond:
                batch, self._items = self._cut()
            self._last_cut = time.monotonic()
            if final:
                self._last_try()
                with self._cond:
                    self._ended = True
                    self._release()
                return
            if batch or self._held:
                self._write(batch)
            self._run_chores()
            with self._cond:
                self._written = self._items[0].at if self._items else self._enqueued
                self._release()
                self._cond.notify_all()
            # Not held while waiting for the next batch: a burst's rows (thousands) would
            # otherwise stay alive until then.
            del batch

    def _cut(self) -> tuple[list[_Item], list[_Item]]:
        """Under _cond: the batch to write now, and what stays queued for the next one
        (the items of builds with nothing urgent and nothing due yet)."""
        items = self._items
        self._urgent = False
        lines, self._lines = self._lines, 0
        if (
            self._stopping
            or self._waiters
            or self._flush_to > self._written
            or lines >= self.max_lines
        ):
            return items, []
        now = time.monotonic()
        due: set[str] = set()
        young: set[str] = set()
        for item in items:
            if item.kind == "row" and item.value.status == QUEUED:
                return items, []  # a submission's batch: its submitter waits for all of it
            build_id = _build_of(item)
            if build_id is not None:
                (due if item.urgent or item.due <= now else young).add(build_id)
        # One item of a build due (a line past its 50 ms) takes all of the build's along.
        young -= due
        if not young:
            return items, []
        batch: list[_Item] = []
        kept: list[_Item] = []
        for item in items:
            (kept if _build_of(item) in young else batch).append(item)
        self._first_due = min(item.due for item in kept)
        self._lines = sum(item.kind == "line" for item in kept)
        return batch, kept

    def _run_chores(self) -> None:
        now = time.monotonic()
        for chore, when in self._chores:
            if when[0] <= now:
                when[0] = now + chore.every
                try:
                    chore.func()
                except Exception:  # a housekeeping failure must not stop the writer
                    log.exception("pf: periodic store task failed")

    def _write(self, batch: list[_Item]) -> None:
        rows: list[BuildRecord] = []
        lines: list[LogLine] = []
        events: list[Event] = []
        pending: dict[str, list[dict[str, Any]]] = {}
        for entry in batch:
            kind, item = entry.kind, entry.value
            if kind == "row":
                rows.append(item)
            elif kind == "line":
                lines.append(item)
                pending.setdefault(item.build_id, []).append(
                    {"stream": item.stream, "text": item.text, "seq": item.seq}
                )
            else:
                waiting = pending.pop(item.get("buildId", ""), None)
                if waiting:
                    events.append(build_log(item["buildId"], waiting))
                events.append(item)
        events.extend(build_log(build_id, waiting) for build_id, waiting in pending.items())
        written = self._store(rows, lines)
        if written is not None:
            # A row the store refused would have taken its record back (a pf worker that
            # went on with a build another one took over, or one cancelled meanwhile),
            # and lines it refused belong to a superseded run: their events are not
            # announced either, so a build ends once and its log tells one story.
            refused = ({row.id for row in rows} | {line.build_id for line in lines}) - written
            if refused:
                events = [e for e in events if e.get("buildId") not in refused]
        self.bus.publish_many(events)

    def _store(self, rows: list[BuildRecord], lines: list[LogLine]) -> set[str] | None:
        """Write what is held, then ``rows`` and ``lines``; hold them all while the
        database does not answer. Returns the ids of the rows written (None: held or
        lost, so none was refused)."""
        held = bool(self._held)
        if held:
            rows = [*self._held_rows.values(), *rows]
            lines = [*self._held_lines, *lines]
            if time.monotonic() < self._retry_at:
                # Not yet: a database that is down is not asked again with every batch.
                self._hold(rows, lines, failed=False)
                return None
        written: set[str] | None = None
        try:
            written = self.store.write(rows, lines)
        except StoreUnavailable as error:
            self.failures += 1
            if not held:
                log.error(
                    "pf: %s (%d records, %d log lines held, written again when it answers)",
                    error,
                    len(rows),
                    len(lines),
                )
            self._hold(rows, lines, failed=True)
            return None
        except StoreError as error:
            # Held, these rows would fail again and hold up every later batch.
            self.failures += 1
            log.error("pf: %s (%d records, %d log lines lost)", error, len(rows), len(lines))
        else:
            if held:
                log.warning(
                    "pf: the build database answers again: %d held records and %d log "
                    "lines written",
                    len(self._held_rows),
                    len(self._held_lines),
                )
        if held:
            self._hold([], [], failed=False)
            self._retry_wait = RETRY_MIN
        return written

    def _hold(self, rows: list[BuildRecord], lines: list[LogLine], *, failed: bool) -> None:
        if failed:
            self._retry_at = time.monotonic() + self._retry_wait
            self._retry_wait = min(RETRY_MAX, self._retry_wait * 2)
        self._held_rows = {row.id: row for row in rows}
        self._held_lines = lines
        with self._cond:
            self._held = len(self._held_rows) + len(self._held_lines)

    def _last_try(self) -> None:
        """On stop: one more write of what is held; logged as lost if it fails again."""
        if not self._held:
            return
        rows, lines = list(self._held_rows.values()), self._held_lines
        try:
            self.store.write(rows, lines)
        except StoreError as error:
            log.error(
                "pf: %s (%d records, %d log lines lost at stop)", error, len(rows), len(lines)
            )
        self._held_rows, self._held_lines, self._held = {}, [], 0


def _resolve(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():  # a client that went away cancelled its wait
            future.set_result(None)
