"""WebSocket clients of pf serve (``/ws`` and ``/``): initial status, build events, batching.

Strategy. One Hub holds the only subscription to the engine's event bus and fans each
batch of events out to every client. A message is encoded once for all clients: its JSON
text, its UTF-8 bytes, and its WebSocket frame (plain, or compressed for clients that
negotiated permessage-deflate) are made by the first client that needs them and the same
bytes are written to every other (Outgoing). The writes are synchronous, straight into
each connection's transport through the Wire that pf serve's WebSocket protocol
(server/run.py) puts in the ASGI scope as the ``pf.wire`` extension: no task, no await
and no frame encoding per client, which is what keeps POST -> ``build_started`` fast
with 1,000 clients on two cores. Under an ASGI server without that protocol the same
messages go through plain ASGI ``websocket.send`` (AsgiWire): the text is still made once
for all clients, the server frames it for each connection.

Two kinds of client. A client connects as the original's pages do and gets one message
per event, each of a documented type (``build_started``, ``build_progress``...), never a
``batch``. A client that opts in with the query parameter ``batch=1`` (``/ws?batch=1``;
pf's dashboard does) gets the same events grouped: ``{"type": "batch", "updates":
[...]}``, fewer and larger messages. Both are fed by the same flushes, so they see the
same events at the same moments, and both share the per-event encodings where they can.

Flushes are leading-edge: an event that arrives after a quiet window is sent at once,
and events that follow within PF_WS_BATCH_MS are collected and sent together at the end
of the window (a window holding one event sends it as itself, even to a batching
client). Lifecycle events (started, completed, failed, cancelled) shorten the window to
URGENT_WINDOW, so POST -> build_started stays fast under a stream of log lines while the
stream itself is still batched.

A client whose transport is full (the peer reads slower than we write) gets a queue of
messages, at most PF_WS_SEND_QUEUE of them and MAX_PENDING bytes, drained by a task that
exists only while the queue does, so a reader that stalls never delays the others. When
that queue is full, a per-event client sheds before it is dropped: its queued
build_progress messages go first (a later progress or the build's end supersedes them),
then the incoming progress or log message itself, then queued build_log lines to make
room for a lifecycle event (the lost lines stay in the build's stored log). Only a
client whose queue is full of lifecycle events is dropped with 1008, so no client misses
a lifecycle event without being told by the close. A batching client's messages mix
kinds and cannot be shed: it is dropped with 1008 when its queue overflows. Shed
messages count in ``pf_ws_dropped_total``. An idle client costs no task of its own beyond
the connection's. Ping/pong, the incoming frame cap and permessage-deflate are uvicorn's
(configured by pf serve). The connection limit (PF_MAX_WS_CONNECTIONS) closes newcomers
with 1008.

Client messages: ``{"type": "subscribe", "buildIds": [...]}`` limits build_log
messages to those builds (added to earlier subscriptions), ``{"type": "unsubscribe",
"buildIds": [...]}`` removes some, and without buildIds returns to every build's logs;
``{"type": "ping"}`` is answered ``{"type": "pong"}``.

Resume. Every build_log line carries ``seq``, its number in the build's log. A client
that reconnects sends ``{"type": "subscribe", "buildIds": [...], "after": {"<buildId>":
<seq>}}`` with the last seq it saw of each build (-1: none) and gets, per build, the
stored lines after it, then the live ones, with no gap and no duplicate: the store holds
every line before it is published, so what the client saw live is there; the build's
live events that arrive while the store is read are held and sent after the stored
lines, in order (so its end still comes after its last line; past PF_WS_SEND_QUEUE held
build_log events those are dropped and the store is read again), and a cursor per build
drops live lines the store read already gave until the live ones pass it. Lines sent
before the answer to that message are sent again by the resume: the client drops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import Counter, Gauge
from starlette.websockets import WebSocket, WebSocketDisconnect

from pf.errors import PfError

if TYPE_CHECKING:
    from pf.config import Settings
    from pf.engine.service import BuildService
    from pf.server.records import BuildJson

log = logging.getLogger("pf.server.ws")

# With several API processes: the sum over those alive (a dead one's clients are gone).
WS_CONNECTIONS = Gauge(
    "pf_ws_connections", "Open WebSocket connections", multiprocess_mode="livesum"
)
WS_MESSAGES = Counter("pf_ws_messages_total", "WebSocket messages queued to clients")
WS_CLOSED = Counter(
    "pf_ws_closed_total", "WebSocket connections closed by the server, by reason", ["reason"]
)
WS_DROPPED = Counter(
    "pf_ws_dropped_total", "Events shed for slow per-event WebSocket clients, by type", ["type"]
)

WIRE = "pf.wire"  # the ASGI scope extension {"wire": Wire} of pf serve's protocol
POLICY_VIOLATION = 1008
GOING_AWAY = 1001
INITIAL_BUILDS = 100  # builds listed in initial_status, newest first
INITIAL_TTL = 1.0  # seconds an unchanged initial_status is reused (as /api/status's list)
MAX_SUBSCRIBED = 1000  # build ids one client may follow
MAX_MESSAGE = 256 * 1024  # a batch is split past this many characters
MAX_PENDING = 4 * 1024 * 1024  # bytes queued for one client before it is dropped
ASGI_IN_FLIGHT = 16  # messages handed to a plain ASGI server's send, per client
RESUME_PAGE = 1000  # stored lines read at once for a resuming client
# Lifecycle events wait at most this long (POST -> build_started must stay fast under
# load); progress and log lines wait out the whole PF_WS_BATCH_MS window.
URGENT = frozenset({"build_started", "build_completed", "build_failed", "build_cancelled"})
URGENT_WINDOW = 0.01
# What a slow per-event client may lose, in the order it is shed; 0: never shed.
KEEP, PROGRESS, LOG = 0, 1, 2
SHED = {"build_progress": PROGRESS, "build_log": LOG}
SHED_NAMES = {PROGRESS: "build_progress", LOG: "build_log"}
BATCH_VALUES = {"1": True, "true": True, "0": False, "false": False, "": False}


class Outgoing:
    """One message for any number of clients: its UTF-8 bytes, and a frame per wire
    format (``frames``, filled by the Wires that send it), each made once. ``shed`` says
    whether a slow per-event client may lose it (PROGRESS, LOG) or not (KEEP)."""

    __slots__ = ("data", "frames", "shed", "text")

    def __init__(self, text: str, shed: int = KEEP) -> None:
        self.text = text
        self.data = text.encode()
        self.frames: dict[object, bytes] = {}
        self.shed = shed

    def __len__(self) -> int:
        return len(self.data)


class Wire(Protocol):
    """Synchronous writes to one WebSocket connection (server/run.py's protocol)."""

    def writable(self) -> bool:
        """Open, and the transport takes more without passing its high-water mark."""

    async def wait_writable(self) -> bool:
        """Wait until writable (True) or closed (False)."""

    def send(self, message: Outgoing) -> None:
        """Write ``message`` as one text frame; nothing once the connection is closing."""

    def send_many(self, messages: list[Outgoing]) -> None:
        """Write ``messages`` in order, one text frame each, in as few writes as it can."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake now: the app's next receive() is the disconnect,
        and a peer that never answers is cut off after a timeout."""


class AsgiWire:
    """A Wire over plain ASGI ``websocket.send``, for a server without pf serve's protocol.

    The message's text is still made once for every client; the server frames (and may
    compress) it for each connection. Up to ASGI_IN_FLIGHT messages wait here for a
    writer task that exists only while they do; past that the connection is not
    writable and the Client queues (and sheds) as it does for a full transport.
    """

    __slots__ = ("_closer", "_open", "_queue", "_room", "_websocket", "_writer")

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self._queue: deque[Outgoing] = deque()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._open = True

    def writable(self) -> bool:
        return self._open and len(self._queue) < ASGI_IN_FLIGHT

    async def wait_writable(self) -> bool:
        while self._open and len(self._queue) >= ASGI_IN_FLIGHT:
            self._room = asyncio.get_running_loop().create_future()
            await self._room
        return self._open

    def send(self, message: Outgoing) -> None:
        if not self._open:
            return
        self._queue.append(message)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def send_many(self, messages: list[Outgoing]) -> None:
        for message in messages:
            self.send(message)

    async def _write(self) -> None:
        try:
            while self._queue:
                message = self._queue[0]
                await self._websocket.send({"type": "websocket.send", "text": message.text})
                self._queue.popleft()
                self._wake()
        except (WebSocketDisconnect, RuntimeError, OSError):
            # The peer is gone (or the server closed it): the reader sees the disconnect.
            self._shut()
        finally:
            self._writer = None

    def _wake(self) -> None:
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    def _shut(self) -> None:
        self._open = False
        self._queue.clear()
        self._wake()

    def close(self, code: int, reason: str) -> None:
        if not self._open:
            return
        self._shut()
        if self._writer is not None:
            self._writer.cancel()
        # Held here so the task is not collected before it runs.
        self._closer = asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            await self._websocket.send({"type": "websocket.close", "code": code, "reason": reason})


def _messages(parts: list[str]) -> list[Outgoing]:
    """Encoded events as WebSocket messages: one event as itself, more as batches of at
    most MAX_MESSAGE bytes (a burst of log lines must not become one huge frame)."""
    if len(parts) <= 1:
        return [Outgoing(part) for part in parts]
    messages: list[Outgoing] = []
    group: list[str] = []
    size = 0
    for part in parts:
        if group and size + len(part) > MAX_MESSAGE:
            messages.append(Outgoing(_batch(group)))
            group, size = [], 0
        group.append(part)
        size += len(part) + 1
    messages.append(Outgoing(_batch(group)))
    return messages


def _split_log(event: dict[str, Any]) -> list[dict[str, Any]]:
    """A build_log event too big for one message, as several with its lines in order."""
    pieces: list[dict[str, Any]] = []
    lines: list[dict[str, str]] = []
    size = 0
    for line in event["lines"]:
        cost = len(line["text"]) * 2 + 32  # escaping can double a line
        if lines and size + cost > MAX_MESSAGE // 2:
            pieces.append({**event, "lines": lines})
            lines, size = [], 0
        lines.append(line)
        size += cost
    pieces.append({**event, "lines": lines})
    return pieces


def _batch(group: list[str]) -> str:
    if len(group) == 1:
        return group[0]
    return '{"type":"batch","updates":[' + ",".join(group) + "]}"


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _valid_after(after: object) -> bool:
    return isinstance(after, dict) and all(
        isinstance(seq, int) and not isinstance(seq, bool) and seq >= -1 for seq in after.values()
    )


def _after(event: dict[str, Any], cursor: int) -> dict[str, Any] | None:
    """A build_log event without its lines up to ``cursor``; None when none is left."""
    lines = [line for line in event["lines"] if line.get("seq", cursor + 1) > cursor]
    if not lines:
        return None
    return event if len(lines) == len(event["lines"]) else {**event, "lines": lines}


class Client:
    """One connected WebSocket: per-event or batching, its log filter, and its queue
    while its transport is full."""

    __slots__ = (
        "batch",
        "closing",
        "cursors",
        "drainer",
        "filter",
        "held",
        "held_count",
        "limit",
        "pending",
        "reread",
        "resumes",
        "size",
        "wire",
    )

    def __init__(self, wire: Wire, limit: int, batch: bool = False) -> None:
        self.wire = wire
        self.limit = limit
        self.batch = batch  # asked for batches (?batch=1); else one message per event
        self.pending: deque[Outgoing] | None = None  # only while the transport is full
        self.size = 0  # bytes waiting in ``pending``
        self.drainer: asyncio.Task[None] | None = None
        self.filter: frozenset[str] | None = None  # None: every build's logs
        self.closing: tuple[int, str] | None = None  # set when the server ends the connection
        # Resumed builds: the last seq sent, until live lines pass it.
        self.cursors: dict[str, int] = {}
        # Builds whose stored lines are being sent: their live events wait here.
        self.held: dict[str, list[dict[str, Any]]] = {}
        self.held_count = 0  # build_log events held
        # Builds whose held build_log events were dropped: the store is read again.
        self.reread: set[str] = set()
        self.resumes: dict[str, int] | None = None  # asked for by the last message

    def hold(self, event: dict[str, Any]) -> None:
        """Keep a live event of a build being resumed; past ``limit`` build_log events,
        drop that build's (the store has them) and never any other kind."""
        build_id = event["buildId"]
        waiting = self.held[build_id]
        if event["type"] != "build_log":
            waiting.append(event)
            return
        if build_id in self.reread:
            return
        if self.held_count >= self.limit:
            kept = [e for e in waiting if e["type"] != "build_log"]
            self.held_count -= len(waiting) - len(kept)
            self.held[build_id] = kept
            self.reread.add(build_id)
            return
        waiting.append(event)
        self.held_count += 1

    async def settle(self) -> bool:
        """Wait until the transport takes more and nothing is queued; False once closed."""
        while self.closing is None:
            if self.pending is None:
                if self.wire.writable():
                    return True
                if not await self.wire.wait_writable():
                    return False
            elif self.drainer is not None:
                await asyncio.wait({self.drainer})
            else:
                return False
        return False

    def offer_many(self, messages: list[Outgoing]) -> None:
        """Offer ``messages`` in order: written together when the transport takes them
        (one system call for a flush's events, not one each), else one by one."""
        if self.closing is None and self.pending is None and self.wire.writable():
            self.wire.send_many(messages)
            return
        for message in messages:
            self.offer(message)

    def offer(self, message: Outgoing) -> None:
        """Send a message now, or queue it behind earlier ones; when the queue is full,
        shed what a per-event client may lose, and drop the client if that is not enough."""
        if self.closing is not None:
            return
        if self.pending is None:
            if self.wire.writable():
                self.wire.send(message)
                return
            self.pending = deque()
            self.drainer = asyncio.get_running_loop().create_task(self._drain())
        if self._full(message) and not self.batch:
            self._evict(PROGRESS)
            if self._full(message) and message.shed != KEEP:
                WS_DROPPED.labels(SHED_NAMES[message.shed]).inc()
                return
            if self._full(message):
                self._evict(LOG)
        if self._full(message):
            WS_CLOSED.labels("slow").inc()
            self.end(POLICY_VIOLATION, "too slow: send queue full")
            return
        self.pending.append(message)
        self.size += len(message)

    def _full(self, message: Outgoing) -> bool:
        assert self.pending is not None
        return len(self.pending) >= self.limit or self.size + len(message) > MAX_PENDING

    def _evict(self, shed: int) -> None:
        """Remove the queued messages of one sheddable kind, in place (the drainer holds
        the same deque)."""
        pending = self.pending
        assert pending is not None
        kept = [m for m in pending if m.shed != shed]
        lost = len(pending) - len(kept)
        if lost:
            WS_DROPPED.labels(SHED_NAMES[shed]).inc(lost)
            pending.clear()
            pending.extend(kept)
            self.size = sum(len(m) for m in kept)

    async def _drain(self) -> None:
        """Write the queue in order as the transport empties, then go away."""
        pending = self.pending
        assert pending is not None
        while pending:
            if not await self.wire.wait_writable():
                return  # closed: the reader sees the disconnect
            while pending and self.wire.writable():
                message = pending.popleft()
                self.size -= len(message)
                self.wire.send(message)
        self.pending = None
        self.drainer = None

    def end(self, code: int, reason: str) -> None:
        """Stop writing to this client and close it, even while its transport is full."""
        if self.closing is None:
            self.closing = (code, reason)
            self.pending = None
            self.size = 0
            if self.drainer is not None:
                self.drainer.cancel()
                self.drainer = None
            self.wire.close(code, reason)

    async def read(
        self, websocket: WebSocket, resume: Callable[[Client, dict[str, int]], Awaitable[None]]
    ) -> None:
        """Apply the client's messages until it disconnects (or the server closed it)."""
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            reply = self.handle(text)
            if reply is not None:
                self.offer(Outgoing(_dumps(reply)))
            if self.resumes:
                wanted, self.resumes = self.resumes, None
                await resume(self, wanted)

    def handle(self, text: str) -> dict[str, Any] | None:
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return {"type": "error", "error": "message is not valid JSON"}
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            return {"type": "pong"}
        if kind not in {"subscribe", "unsubscribe"}:
            return {"type": "error", "error": f"unknown message type {kind!r}"}
        ids = message.get("buildIds")
        if ids is None and kind == "unsubscribe":
            self.filter = None
            self.cursors.clear()
            return {"type": "subscribed", "buildIds": None}
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return {"type": "error", "error": "buildIds must be an array of build ids"}
        after = message.get("after", {}) if kind == "subscribe" else {}
        if not _valid_after(after):
            return {
                "type": "error",
                "error": "after must map build ids to the seq of the last line seen (-1: none)",
            }
        current = self.filter or frozenset()
        wanted = set(ids) | set(after)
        updated = current | wanted if kind == "subscribe" else current - wanted
        if len(updated) > MAX_SUBSCRIBED:
            return {"type": "error", "error": f"at most {MAX_SUBSCRIBED} builds per client"}
        self.filter = frozenset(updated) if kind == "subscribe" or self.filter else None
        for build_id in wanted - updated:
            self.cursors.pop(build_id, None)
        if after:
            self.resumes = dict(after)
        return {"type": "subscribed", "buildIds": sorted(self.filter or ())}


class Hub:
    """Fans the engine's events out to every WebSocket client, per event or in batches."""

    def __init__(self, service: BuildService, settings: Settings, build_json: BuildJson) -> None:
        self.service = service
        self.build_json = build_json
        self.window = settings.ws_batch_ms / 1000
        self.max_clients = settings.max_ws_connections
        self.queue_limit = settings.ws_send_queue
        self.clients: set[Client] = set()
        # Bumped by every event (and by the API on submissions): cached answers that
        # list builds are valid only while it stays the same.
        self.generation = 0
        self._initial: tuple[int, float, Outgoing] | None = None
        self._batch: list[dict[str, Any]] = []
        self._ready = asyncio.Event()
        self._urgent = False  # the batch holds a lifecycle event
        # While the flush sleeps out a window: resolved by a lifecycle event to end it.
        self._hurry: asyncio.Future[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def connections(self) -> int:
        return len(self.clients)

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._collect(), name="pf-ws-collect"),
            asyncio.create_task(self._flush(), name="pf-ws-flush"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client in list(self.clients):
            client.end(GOING_AWAY, "server shutting down")

    async def _collect(self) -> None:
        """Move events from the bus into the current batch as soon as they arrive, so the
        bus queue never fills while a window is open."""
        while True:
            subscription = self.service.subscribe()
            try:
                async for event in subscription:
                    self._batch.append(event)
                    self.generation += 1
                    self._ready.set()
                    if event["type"] in URGENT and not self._urgent:
                        self._urgent = True
                        if self._hurry is not None and not self._hurry.done():
                            self._hurry.set_result(None)
            finally:
                subscription.close()
            if not subscription.overflowed:
                return  # the bus closed: the service is stopping
            # The bus dropped us (the loop fell far behind): events were lost, so every
            # client gets the whole state again.
            log.warning("event subscription overflowed; resending the initial status")
            initial = self.initial_status()
            for client in list(self.clients):
                client.offer(initial)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        last = -self.window
        while True:
            await self._ready.wait()
            while (wait := last + self._window() - loop.time()) > 0:
                # Sleeps out the window, unless a lifecycle event shortens it: a future
                # and a timer, not wait_for's task per flush.
                self._hurry = loop.create_future()
                timer = loop.call_later(wait, _wake, self._hurry)
                try:
                    await self._hurry
                finally:
                    timer.cancel()
                    self._hurry = None
            self._ready.clear()
            self._urgent = False
            events, self._batch = self._batch, []
            self.broadcast(events)
            last = loop.time()

    def _window(self) -> float:
        return min(self.window, URGENT_WINDOW) if self._urgent else self.window

    def broadcast(self, events: list[dict[str, Any]]) -> None:
        """Send ``events`` to every client, build_log filtered by its subscriptions: one
        message per event, or batches for the clients that asked for them.

        Each event is encoded once; clients of the same kind with the same filter share
        the messages, and per-event clients share each event's message whatever their
        filter, down to the bytes of their frames.
        """
        if not self.clients or not events:
            return
        parts: list[str] = []
        split: list[dict[str, Any]] = []
        for event in events:
            text = _dumps(event)
            if len(text) > MAX_MESSAGE and event["type"] == "build_log":
                for piece in _split_log(event):
                    parts.append(_dumps(piece))
                    split.append(piece)
            else:
                parts.append(text)
                split.append(event)
        events = split
        messages: dict[tuple[frozenset[str] | None, bool], list[Outgoing]] = {}
        singles: list[Outgoing] | None = None  # one per event, shared by per-event clients
        sent = 0
        for client in list(self.clients):
            if client.cursors or client.held:
                own = self._own(client, parts, events)
                client.offer_many(own)
                sent += len(own)
                continue
            key = (client.filter, client.batch)
            chosen = messages.get(key)
            if chosen is None:
                wanted = [
                    i
                    for i, event in enumerate(events)
                    if client.filter is None
                    or event["type"] != "build_log"
                    or event["buildId"] in client.filter
                ]
                if client.batch:
                    chosen = _messages([parts[i] for i in wanted])
                else:
                    if singles is None:
                        singles = [
                            Outgoing(part, SHED.get(event["type"], KEEP))
                            for part, event in zip(parts, events, strict=True)
                        ]
                    chosen = [singles[i] for i in wanted]
                messages[key] = chosen
            client.offer_many(chosen)
            sent += len(chosen)
        WS_MESSAGES.inc(sent)

    def _own(
        self, client: Client, parts: list[str], events: list[dict[str, Any]]
    ) -> list[Outgoing]:
        """The messages of a client resuming some builds: their live lines held while
        the store is read, then cut at the cursor until the live lines pass it."""
        mine: list[tuple[str, dict[str, Any]]] = []
        for part, event in zip(parts, events, strict=True):
            build_id = event.get("buildId", "")
            if build_id in client.held:
                if (
                    event["type"] != "build_log"
                    or client.filter is None
                    or build_id in client.filter
                ):
                    client.hold(event)
                continue
            if event["type"] == "build_log":
                if client.filter is not None and build_id not in client.filter:
                    continue
                cursor = client.cursors.get(build_id)
                if cursor is not None:
                    rest = _after(event, cursor)
                    if rest is None:
                        continue
                    del client.cursors[build_id]  # lines come in order: the rest are newer
                    if rest is not event:
                        part, event = _dumps(rest), rest
            mine.append((part, event))
        if client.batch:
            return _messages([part for part, _ in mine])
        return [Outgoing(part, SHED.get(event["type"], KEEP)) for part, event in mine]

    async def resume(self, client: Client, after: dict[str, int]) -> None:
        """Send each build's stored lines after ``after[build]``, then its live ones."""
        for build_id in after:
            client.cursors.pop(build_id, None)
            client.held[build_id] = []
        for build_id, seq in after.items():
            cursor: int | None = seq
            try:
                cursor = await self._backlog(client, build_id, seq)
            except PfError as error:
                client.offer(Outgoing(_dumps({"type": "error", "error": str(error)})))
            # No await from here on: the held events go out, then live ones follow.
            waiting = client.held.pop(build_id, None) or []
            client.reread.discard(build_id)
            for event in waiting:
                if event["type"] != "build_log":
                    client.offer(Outgoing(_dumps(event), SHED.get(event["type"], KEEP)))
                    continue
                client.held_count -= 1
                rest = event if cursor is None else _after(event, cursor)
                if rest is not None:
                    client.offer(Outgoing(_dumps(rest), LOG))
                    cursor = rest["lines"][-1]["seq"]
            if cursor is not None:
                client.cursors[build_id] = cursor

    async def _backlog(self, client: Client, build_id: str, seq: int) -> int | None:
        """Send a build's stored lines after ``seq``; the seq of the last one sent (None
        once the client is gone)."""
        cursor = seq
        while True:
            lines = await asyncio.to_thread(self.service.lines_after, build_id, cursor, RESUME_PAGE)
            if lines:
                event = {"type": "build_log", "buildId": build_id, "lines": lines}
                for piece in _split_log(event):
                    if not await client.settle():
                        return None
                    client.offer(Outgoing(_dumps(piece)))
                cursor = lines[-1]["seq"]
            if len(lines) == RESUME_PAGE:
                continue
            if build_id not in client.reread:
                return cursor
            # Too many live lines arrived meanwhile: they are in the store by now.
            client.reread.discard(build_id)

    def initial_status(self) -> Outgoing:
        """The initial_status message, shared by the clients that connect while no build
        changed (a reconnecting crowd costs one listing and one encoding)."""
        now = time.monotonic()
        cached = self._initial
        if cached is not None and cached[0] == self.generation and now - cached[1] < INITIAL_TTL:
            return cached[2]
        builds = [self.build_json(r) for r in self.service.list_builds(limit=INITIAL_BUILDS)]
        message = Outgoing(_dumps({"type": "initial_status", "builds": builds}))
        self._initial = (self.generation, now, message)
        return message

    async def endpoint(self, websocket: WebSocket) -> None:
        wire: Wire | None = websocket.scope.get("extensions", {}).get(WIRE, {}).get("wire")
        await websocket.accept()
        if wire is None:
            wire = AsgiWire(websocket)
        batch = BATCH_VALUES.get(websocket.query_params.get("batch", "").lower())
        if batch is None:
            await websocket.close(POLICY_VIOLATION, "batch must be 1 or 0")
            return
        if len(self.clients) >= self.max_clients:
            WS_CLOSED.labels("limit").inc()
            await websocket.close(POLICY_VIOLATION, "too many WebSocket connections")
            return
        client = Client(wire, self.queue_limit, batch)
        # Registered and given its initial status with no await in between, so no event
        # can fall between the snapshot and the stream.
        self.clients.add(client)
        WS_CONNECTIONS.inc()
        try:
            client.offer(self.initial_status())
            await client.read(websocket, self.resume)
        finally:
            self.clients.discard(client)
            WS_CONNECTIONS.dec()
            if client.drainer is not None:
                client.drainer.cancel()
