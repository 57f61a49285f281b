"""The in-process event bus: build events from any thread to every subscriber on the loop.

Events are plain dicts shaped exactly as docs/server.md's WebSocket messages (constructors
below). ``publish`` may be called from any thread and never blocks: it hands the events
to the loop with ``call_soon_threadsafe``, even from the loop itself, so every event
reaches every subscriber in one global order. Each subscriber owns a bounded
asyncio.Queue; one that falls ``maxsize`` events behind is marked overflowed and dropped
(its pending events discarded), and its reader gets SubscriptionClosed, so a slow
client costs the others nothing. Imports nothing from pf.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

Event = dict[str, Any]

_CLOSED: Event = {"type": "_closed"}


class SubscriptionClosed(Exception):
    """The subscription ended: closed by its owner or the bus, or dropped for overflow."""


class Subscription:
    """One subscriber's bounded queue of events. Use from the event loop only::

    sub = bus.subscribe()
    try:
        while True:
            event = await sub.get()        # raises SubscriptionClosed when dropped
            more = sub.get_nowait()        # None when nothing else is waiting
    finally:
        sub.close()
    """

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize + 1)  # +1: room for _CLOSED
        self._maxsize = maxsize
        self.overflowed = False
        self.closed = False

    def _offer(self, event: Event) -> bool:
        """Queue ``event``; False (and the subscription ended) when it is full."""
        if self.closed:
            return False
        if self._queue.qsize() >= self._maxsize:
            self.overflowed = True
            self._end()
            return False
        self._queue.put_nowait(event)
        return True

    def _end(self) -> None:
        self.closed = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)

    async def get(self) -> Event:
        """The next event; raises SubscriptionClosed once the subscription has ended."""
        event = await self._queue.get()
        if event is _CLOSED:
            self._queue.put_nowait(_CLOSED)
            raise SubscriptionClosed("overflowed" if self.overflowed else "closed")
        return event

    def get_nowait(self) -> Event | None:
        """The next event if one is waiting, else None (also once closed)."""
        try:
            event = self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None
        if event is _CLOSED:
            self._queue.put_nowait(_CLOSED)
            return None
        return event

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Unsubscribe; a pending ``get`` raises SubscriptionClosed. Idempotent."""
        if not self.closed:
            self._end()
        self._bus._remove(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self.get()
        except SubscriptionClosed:
            raise StopAsyncIteration from None


class Bus(Protocol):
    """What the engine needs of an event bus: EventBus here, or engine.redisbus.RedisBus."""

    def attach(self, loop: asyncio.AbstractEventLoop) -> None: ...

    def detach(self) -> None: ...

    @property
    def subscribers(self) -> int: ...

    def subscribe(self) -> Subscription: ...

    def publish(self, event: Event) -> None: ...

    def publish_many(self, events: Iterable[Event]) -> None: ...

    def close(self) -> None: ...

    def problem(self) -> str | None:
        """Why events cannot reach every subscriber now, or None (blocking: call it from
        a thread)."""


class EventBus:
    """Fan-out of events to subscribers; publish from any thread, subscribe on the loop."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[Subscription] = set()
        self._lock = threading.Lock()
        self.published = 0
        self.dropped = 0

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def detach(self) -> None:
        self._loop = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def subscribe(self) -> Subscription:
        """A new subscription, receiving every event published from now on."""
        sub = Subscription(self, self.maxsize)
        with self._lock:
            self._subscribers.add(sub)
        return sub

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subscribers.discard(sub)

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every subscriber, in order; callable from any thread."""
        self.publish_many((event,))

    def publish_many(self, events: Iterable[Event]) -> None:
        batch = list(events)
        loop = self._loop
        if not batch or loop is None:
            return
        # The loop is closing during shutdown: nobody is left to read.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._deliver, batch)

    def _deliver(self, batch: Sequence[Event]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for event in batch:
            self.published += 1
            for sub in subscribers:
                if not sub.closed and not sub._offer(event):
                    self.dropped += 1
                    self._remove(sub)

    def problem(self) -> str | None:
        return None  # nothing outside this process to fail

    def close(self) -> None:
        """End every subscription (their readers get SubscriptionClosed)."""
        with self._lock:
            subscribers = list(self._subscribers)
            self._subscribers.clear()
        for sub in subscribers:
            if not sub.closed:
                sub._end()


def build_started(build_id: str, language: str, target: str, project: str | None) -> Event:
    return {
        "type": "build_started",
        "buildId": build_id,
        "language": language,
        "target": target,
        "project": project,
    }


def build_progress(
    build_id: str, status: str, progress: int, phase: str | None, eta: float | None
) -> Event:
    return {
        "type": "build_progress",
        "buildId": build_id,
        "status": status,
        "progress": progress,
        "phase": phase,
        "eta": eta,
    }


def build_log(build_id: str, lines: Sequence[Mapping[str, Any]]) -> Event:
    """Lines ``{stream, text, seq}``: seq numbers a build's lines from 0, as the store does."""
    return {"type": "build_log", "buildId": build_id, "lines": list(lines)}


def build_completed(build_id: str, cached: bool) -> Event:
    return {
        "type": "build_completed",
        "buildId": build_id,
        "status": "completed",
        "progress": 100,
        "cached": cached,
    }


def build_failed(build_id: str, error: str | None) -> Event:
    return {"type": "build_failed", "buildId": build_id, "status": "failed", "error": error}


def build_cancelled(build_id: str) -> Event:
    return {"type": "build_cancelled", "buildId": build_id}
