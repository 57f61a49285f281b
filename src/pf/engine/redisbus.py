"""The event bus shared through Redis: events published in any process reach every
subscriber in every process.

Strategy. A RedisBus wraps the in-process EventBus. What this process publishes reaches
its own subscribers at once, by the embedded path (same speed, and still there while
Redis is down), and goes into a bounded outbox that one publisher thread writes to the
Redis streams (store.streams) in order, a pipeline per batch, so ``publish`` never waits
for Redis whether it is called on the loop or from a thread. A reader task on the loop,
started by the first subscription, reads the events stream and the log stream of each
build it follows with XREAD BLOCK by last id, skips what this process published, and
hands the rest to the local subscribers in the order read.

Following. A build is followed from its ``build_started`` (or from the first event of it
this process sees) until it ends, at most PF_MAX_QUEUE builds at once (the longest
followed goes first). Before a build's end event is delivered the rest of its log stream
is read, so a subscriber that sees ``build_completed`` has seen every line before it, as
in-process. Lines carry the build's sequence numbers: a line delivered already is
skipped, and lines missing between two entries (lost with a restarted Redis, or trimmed
by MAXLEN before the reader came) are read from the store.

Redis down. The outbox keeps at most PF_EVENT_STREAM_MAX events, the oldest dropped past
it (counted in ``lost``, logged; their lines stay in the store), and is written when
Redis answers again, retried every RETRY_MIN..RETRY_MAX seconds. The reader retries
alike, then reads on from its last ids, and asks the store about every build it
follows: one that ended meanwhile gets its remaining lines and its end event from the
store, once (a later copy from Redis is skipped). ``problem()`` says what is wrong, for
/api/ready.

Completions. The owner may give a ``completed`` coroutine: it is awaited with the id of
each build another process completed, before its ``build_completed`` is delivered here,
so what it updates (the service's module index) is current when a subscriber hears of
the end. Imports engine.events, store and config.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from pf.config import Settings
from pf.engine.events import (
    Event,
    EventBus,
    Subscription,
    build_cancelled,
    build_completed,
    build_failed,
    build_log,
)
from pf.errors import StoreError
from pf.store.history import Store
from pf.store.logs import LogLine
from pf.store.record import CANCELLED, COMPLETED, FAILED, BuildRecord
from pf.store.streams import (
    ENDS,
    EVENTS,
    Entry,
    StreamReader,
    StreamsError,
    StreamsUnavailable,
    StreamWriter,
    build_of,
    log_key,
    where,
)

log = logging.getLogger("pf.engine")

RETRY_MIN = 0.25
RETRY_MAX = 5.0
READ_COUNT = 500  # entries per stream and read
READ_BLOCK = 1.0  # seconds one read waits; a build that starts meanwhile joins the next
WRITE_BATCH = 500  # events per pipeline
CLOSE_WAIT = 2.0  # seconds a closing bus gives its outbox to reach Redis


class _Follow:
    """Where the reader is in one build's log stream."""

    __slots__ = ("last_id", "next_seq", "suspect")

    def __init__(self, next_seq: int | None) -> None:
        self.last_id = "0-0"
        self.next_seq = next_seq  # the next line expected; None: whichever comes first
        self.suspect = False  # Redis broke while following: its tail may be lost


class RedisBus:
    """The Bus of a process sharing events with others through Redis (PF_REDIS_URL)::

    bus = RedisBus(settings, store)
    bus.attach(loop)
    sub = bus.subscribe()            # on the loop: starts reading Redis
    bus.publish(event)               # any thread: local subscribers now, Redis soon
    """

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        completed: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        if not settings.redis_url:
            raise ValueError("RedisBus needs PF_REDIS_URL")
        self.url = settings.redis_url
        self.local = EventBus(settings.ws_send_queue)
        self.store = store
        # Awaited before another process's build_completed reaches the subscribers here
        # (the service indexes the build's modules with it, engine.service).
        self.completed = completed
        self.origin = uuid.uuid4().hex
        self.outbox_max = settings.event_stream_max
        self.max_follow = settings.max_queue
        self.max_ended = settings.max_builds
        self.lost = 0  # events dropped from a full outbox
        self.write_error: str | None = None
        self.read_error: str | None = None
        self._writer = StreamWriter(
            self.url, settings.event_stream_max, settings.max_logs_per_build
        )
        self._outbox: deque[Event] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._reader: asyncio.Task[None] | None = None
        self._events_id: str | None = None
        self._following: OrderedDict[str, _Follow] = OrderedDict()
        self._ended: OrderedDict[str, None] = OrderedDict()

    # The Bus interface --------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.local.attach(loop)

    def detach(self) -> None:
        self.local.detach()

    @property
    def subscribers(self) -> int:
        return self.local.subscribers

    def subscribe(self) -> Subscription:
        """A subscription to every event of every process from now on (on the loop)."""
        sub = self.local.subscribe()
        if self._reader is None and not self._closing:
            self._reader = asyncio.get_running_loop().create_task(self._read(), name="pf-bus-read")
        return sub

    def publish(self, event: Event) -> None:
        self.publish_many((event,))

    def publish_many(self, events: Iterable[Event]) -> None:
        """To this process's subscribers now, to Redis by the publisher thread; any thread."""
        batch = list(events)
        if not batch:
            return
        self.local.publish_many(batch)
        with self._cond:
            if self._closing:
                return
            self._outbox.extend(batch)
            self._trim()
            self._cond.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._publish, name="pf-bus-publish", daemon=True
                )
                self._thread.start()

    def problem(self) -> str | None:
        """Why events do not reach Redis or come from it now, or None (blocking)."""
        if not self._writer.ping():
            return f"the event bus (Redis at {where(self.url)}) does not answer"
        if self.read_error is not None:
            return f"the event bus cannot read events: {self.read_error}"
        with self._cond:
            waiting = len(self._outbox) if self.write_error is not None else 0
        if waiting:
            return f"the event bus has {waiting} events waiting: {self.write_error}"
        return None

    def close(self) -> None:
        """End every subscription, stop reading, and give the outbox CLOSE_WAIT seconds
        to reach Redis."""
        self.local.close()
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._reader is not None:
            self._reader.cancel()
        thread = self._thread
        if thread is not None:
            thread.join(CLOSE_WAIT)
        with self._cond:
            if self._outbox:
                log.error(
                    "pf: %d events never reached Redis at %s (it did not answer at stop)",
                    len(self._outbox),
                    where(self.url),
                )
                self._outbox.clear()
        if thread is None or not thread.is_alive():
            self._writer.close()

    # Publishing (the publisher thread) ----------------------------------------------

    def _trim(self) -> None:
        """Drop the oldest events past the cap (call holding ``_cond``)."""
        over = len(self._outbox) - self.outbox_max
        if over <= 0:
            return
        for _ in range(over):
            self._outbox.popleft()
        if not self.lost:
            log.warning(
                "pf: more than %d events wait for Redis at %s: the oldest are dropped "
                "(their log lines stay in the build database)",
                self.outbox_max,
                where(self.url),
            )
        self.lost += over

    def _publish(self) -> None:
        wait = RETRY_MIN
        retry_at = 0.0  # after a failure: no new try before then, however much is published
        while True:
            with self._cond:
                while not self._closing and (
                    not self._outbox or (left := retry_at - time.monotonic()) > 0
                ):
                    self._cond.wait(left if self._outbox else None)
                if not self._outbox:
                    return
                batch = [self._outbox.popleft() for _ in range(min(WRITE_BATCH, len(self._outbox)))]
                closing = self._closing
            try:
                self._writer.write(batch, self.origin)
            except StreamsUnavailable as error:
                if self.write_error is None:
                    log.error("pf: %s (events wait for it, at most %d)", error, self.outbox_max)
                self.write_error = str(error)
                with self._cond:
                    self._outbox.extendleft(reversed(batch))
                    self._trim()
                if closing:
                    return
                retry_at = time.monotonic() + wait
                wait = min(RETRY_MAX, wait * 2)
                continue
            except StreamsError as error:
                # Written again, the batch would be refused again and hold up the rest.
                log.error("pf: %s (%d events not shared)", error, len(batch))
                continue
            if self.write_error is not None:
                log.warning("pf: Redis at %s answers again: events flow", where(self.url))
                self.write_error = None
            wait = RETRY_MIN
            retry_at = 0.0

    # Reading (a task on the loop) ---------------------------------------------------

    async def _read(self) -> None:
        reader = StreamReader(self.url)
        wait = RETRY_MIN
        broken = False
        task = asyncio.current_task()
        try:
            # redis-py can swallow a cancel that lands mid-command (a known bug of its own):
            # the loop checks for one, and for close(), itself.
            while not self._closing and not (task is not None and task.cancelling()):
                try:
                    if self._events_id is None:
                        self._events_id = await reader.last_event_id()
                    if broken:
                        await self._resync(reader)
                        broken = False
                    cursors = {EVENTS: self._events_id}
                    cursors.update((log_key(b), f.last_id) for b, f in self._following.items())
                    found = await reader.read(cursors, READ_COUNT, READ_BLOCK)
                    await self._dispatch(reader, found)
                except StreamsError as error:
                    if self.read_error is None:
                        log.error("pf: %s (reading events again when it answers)", error)
                    self.read_error = str(error)
                    broken = True
                    for follow in self._following.values():
                        follow.suspect = True
                    await asyncio.sleep(wait)
                    wait = min(RETRY_MAX, wait * 2)
                    continue
                if self.read_error is not None:
                    log.warning("pf: Redis at %s answers again: reading events", where(self.url))
                    self.read_error = None
                wait = RETRY_MIN
        finally:
            # Bounded: redis-py may hold a connection's lock past a cancelled command.
            with contextlib.suppress(StreamsError, OSError, TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT):
                    await reader.close()

    async def _dispatch(self, reader: StreamReader, found: list[tuple[str, list[Entry]]]) -> None:
        """Deliver what one read found: events in order, each build's lines before its end.

        What was delivered before an error is delivered, and the cursors say so."""
        events: list[Entry] = []
        logs: dict[str, list[Entry]] = {}
        for key, entries in found:
            build_id = build_of(key)
            if build_id is None:
                events = entries
            else:
                logs[build_id] = entries
        out: list[Event] = []
        try:
            for entry in events:
                if entry.origin == self.origin:
                    self._events_id = entry.id
                    continue
                event = entry.event
                build_id = event.get("buildId")
                if isinstance(build_id, str):
                    if build_id not in self._ended:
                        if build_id not in self._following:
                            self._follow(build_id, 0 if event["type"] == "build_started" else None)
                        if event["type"] in ENDS:
                            await self._drain(reader, build_id, logs.pop(build_id, []), out)
                            await self._before_end(event)
                            out.append(event)
                            self._end(build_id)
                        else:
                            out.append(event)
                self._events_id = entry.id
            for build_id, entries in logs.items():
                if build_id in self._following:
                    await self._lines(build_id, entries, out)
        finally:
            self.local.publish_many(out)

    async def _before_end(self, event: Event) -> None:
        if self.completed is not None and event["type"] == "build_completed":
            await self.completed(event["buildId"])

    def _follow(self, build_id: str, next_seq: int | None) -> None:
        if len(self._following) >= self.max_follow:
            dropped, _ = self._following.popitem(last=False)
            log.warning(
                "pf: following more than %d builds' logs: %s's are no longer read live",
                self.max_follow,
                dropped,
            )
        self._following[build_id] = _Follow(next_seq)

    def _end(self, build_id: str) -> None:
        self._following.pop(build_id, None)
        self._ended[build_id] = None
        while len(self._ended) > self.max_ended:
            self._ended.popitem(last=False)

    async def _lines(self, build_id: str, entries: list[Entry], out: list[Event]) -> None:
        """Deliver a build's log entries: lines already delivered skipped, lines missing
        before them read from the store."""
        follow = self._following[build_id]
        for entry in entries:
            lines: list[dict[str, Any]] = entry.event.get("lines", [])
            if follow.next_seq is not None:
                lines = [line for line in lines if line["seq"] >= follow.next_seq]
                if lines and lines[0]["seq"] > follow.next_seq:
                    await self._fill(build_id, follow.next_seq, lines[0]["seq"], out)
            if lines:
                out.append({**entry.event, "lines": lines})
                follow.next_seq = lines[-1]["seq"] + 1
            follow.last_id = entry.id

    async def _fill(self, build_id: str, first: int, before: int | None, out: list[Event]) -> None:
        """Deliver lines ``first``.. (up to ``before``) of a build from the store."""
        if self.store is None:
            return
        try:
            stored = await asyncio.to_thread(self.store.logs, build_id, first - 1, before)
        except StoreError as error:
            log.warning("pf: lines of %s lost by Redis stay unread: %s", build_id, error)
            return
        if stored:
            out.append(build_log(build_id, [_line(line) for line in stored]))
            follow = self._following.get(build_id)
            if follow is not None:
                follow.next_seq = stored[-1].seq + 1

    async def _drain(
        self, reader: StreamReader, build_id: str, entries: list[Entry], out: list[Event]
    ) -> None:
        """Deliver every line of a build that ends: what this read found, the rest of its
        stream, and (if Redis broke while it ran) what only the store has."""
        await self._lines(build_id, entries, out)
        follow = self._following[build_id]
        while more := await reader.log_after(build_id, follow.last_id, READ_COUNT):
            await self._lines(build_id, more, out)
        if follow.suspect:
            await self._fill(build_id, follow.next_seq or 0, None, out)

    async def _resync(self, reader: StreamReader) -> None:
        """After Redis broke: a followed build that ended meanwhile gets its remaining
        lines and its end event from the store (a later copy from Redis is skipped)."""
        if self.store is None:
            return
        for build_id in list(self._following):
            try:
                row = await asyncio.to_thread(self.store.get, build_id)
            except StoreError as error:
                log.warning("pf: cannot check %s after Redis broke: %s", build_id, error)
                continue
            end = _end_event(row) if row is not None else None
            if end is None:
                continue
            out: list[Event] = []
            try:
                await self._drain(reader, build_id, [], out)
                await self._before_end(end)
                out.append(end)
                self._end(build_id)
            finally:
                self.local.publish_many(out)


def _line(line: LogLine) -> dict[str, Any]:
    return {"stream": line.stream, "text": line.text, "seq": line.seq}


def _end_event(row: BuildRecord) -> Event | None:
    """The end event of a build that ended, as its record says; None while it runs."""
    if row.status == COMPLETED:
        return build_completed(row.id, row.cached)
    if row.status == FAILED:
        return build_failed(row.id, row.error)
    if row.status == CANCELLED:
        return build_cancelled(row.id)
    return None
