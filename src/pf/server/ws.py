"""WebSocket clients of pf serve (``/ws`` and ``/``): initial status, build events, batching.

Strategy. One Hub holds the only subscription to the engine's event bus and fans each
batch of events out to every client, so an event is encoded to JSON once, not once per
client. Batching is leading-edge: an event that arrives after a quiet window is sent at
once, and events that follow within PF_WS_BATCH_MS are collected and sent together as
``{"type": "batch", "updates": [...]}`` at the end of the window (a window holding one
event sends it as itself). Lifecycle events (started, completed, failed, cancelled)
shorten the window to URGENT_WINDOW, so POST -> build_started stays fast under a
stream of log lines while the stream itself is still batched.

Every client has a bounded queue of encoded messages (PF_WS_SEND_QUEUE messages, and
at most MAX_PENDING characters) drained by its own writer; a client whose queue is
full is dropped, so a reader that stalls never delays the others. Ping/pong, the
incoming frame cap and permessage-deflate are uvicorn's (configured by pf serve). The
connection limit (PF_MAX_WS_CONNECTIONS) closes newcomers with 1008.

Client messages: ``{"type": "subscribe", "buildIds": [...]}`` limits build_log
messages to those builds (added to earlier subscriptions), ``{"type": "unsubscribe",
"buildIds": [...]}`` removes some, and without buildIds returns to every build's logs;
``{"type": "ping"}`` is answered ``{"type": "pong"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge
from starlette.websockets import WebSocket

if TYPE_CHECKING:
    from pf.config import Settings
    from pf.engine.service import BuildService

log = logging.getLogger("pf.server.ws")

WS_CONNECTIONS = Gauge("pf_ws_connections", "Open WebSocket connections")
WS_MESSAGES = Counter("pf_ws_messages_total", "WebSocket messages queued to clients")
WS_CLOSED = Counter(
    "pf_ws_closed_total", "WebSocket connections closed by the server, by reason", ["reason"]
)

POLICY_VIOLATION = 1008
GOING_AWAY = 1001
INITIAL_BUILDS = 100  # builds listed in initial_status, newest first
MAX_SUBSCRIBED = 1000  # build ids one client may follow
MAX_MESSAGE = 256 * 1024  # a batch is split past this many characters
MAX_PENDING = 4 * 1024 * 1024  # characters queued for one client before it is dropped
# Lifecycle events wait at most this long (POST -> build_started must stay fast under
# load); progress and log lines wait out the whole PF_WS_BATCH_MS window.
URGENT = frozenset({"build_started", "build_completed", "build_failed", "build_cancelled"})
URGENT_WINDOW = 0.01
_CLOSE_TIMEOUT = 1.0


def _messages(parts: list[str]) -> list[str]:
    """Encoded events as WebSocket messages: one event as itself, more as batches of at
    most MAX_MESSAGE bytes (a burst of log lines must not become one huge frame)."""
    if len(parts) <= 1:
        return parts
    messages: list[str] = []
    group: list[str] = []
    size = 0
    for part in parts:
        if group and size + len(part) > MAX_MESSAGE:
            messages.append(_batch(group))
            group, size = [], 0
        group.append(part)
        size += len(part) + 1
    messages.append(_batch(group))
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


class Client:
    """One connected WebSocket: its log filter and its bounded queue of encoded messages."""

    __slots__ = ("closing", "filter", "limit", "pending", "size", "wake", "websocket", "writer")

    def __init__(self, websocket: WebSocket, limit: int) -> None:
        self.websocket = websocket
        self.limit = limit
        self.pending: deque[str] = deque()
        self.size = 0  # characters waiting in ``pending``
        self.wake = asyncio.Event()
        self.filter: frozenset[str] | None = None  # None: every build's logs
        self.closing: tuple[int, str] | None = None  # set when the server ends the connection
        self.writer: asyncio.Task[None] | None = None

    def offer(self, text: str) -> None:
        """Queue a message, or drop the client when its queue is full."""
        if self.closing is not None:
            return
        if len(self.pending) >= self.limit or self.size + len(text) > MAX_PENDING:
            WS_CLOSED.labels("slow").inc()
            self.end(POLICY_VIOLATION, "too slow: send queue full")
            return
        self.pending.append(text)
        self.size += len(text)
        WS_MESSAGES.inc()
        self.wake.set()

    def end(self, code: int, reason: str) -> None:
        """Stop writing to this client, even in the middle of a blocked send."""
        if self.closing is None:
            self.closing = (code, reason)
            self.pending.clear()
            self.size = 0
            if self.writer is not None:
                self.writer.cancel()

    async def write(self) -> None:
        """Send queued messages in order until the server ends the connection."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                text = self.pending.popleft()
                self.size -= len(text)
                await self.websocket.send_text(text)

    async def read(self) -> None:
        """Apply the client's messages until it disconnects."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                text = (message.get("bytes") or b"").decode("utf-8", "replace")
            reply = self.handle(text)
            if reply is not None:
                self.offer(json.dumps(reply, separators=(",", ":")))

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
            return {"type": "subscribed", "buildIds": None}
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return {"type": "error", "error": "buildIds must be an array of build ids"}
        current = self.filter or frozenset()
        updated = current | set(ids) if kind == "subscribe" else current - set(ids)
        if len(updated) > MAX_SUBSCRIBED:
            return {"type": "error", "error": f"at most {MAX_SUBSCRIBED} builds per client"}
        self.filter = frozenset(updated) if kind == "subscribe" or self.filter else None
        return {"type": "subscribed", "buildIds": sorted(self.filter or ())}


class Hub:
    """Fans the engine's events out to every WebSocket client, in batches."""

    def __init__(self, service: BuildService, settings: Settings) -> None:
        self.service = service
        self.window = settings.ws_batch_ms / 1000
        self.max_clients = settings.max_ws_connections
        self.queue_limit = settings.ws_send_queue
        self.clients: set[Client] = set()
        # Bumped by every event (and by the API on submissions): cached answers that
        # list builds are valid only while it stays the same.
        self.generation = 0
        self._batch: list[dict[str, Any]] = []
        self._ready = asyncio.Event()
        self._urgent = False  # the batch holds a lifecycle event
        self._hurry = asyncio.Event()
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
                        self._hurry.set()
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
                self._hurry.clear()
                # Sleeps out the window, unless a lifecycle event shortens it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), wait)
            self._ready.clear()
            self._urgent = False
            events, self._batch = self._batch, []
            self.broadcast(events)
            last = loop.time()

    def _window(self) -> float:
        return min(self.window, URGENT_WINDOW) if self._urgent else self.window

    def broadcast(self, events: list[dict[str, Any]]) -> None:
        """Queue ``events`` to every client, build_log filtered by its subscriptions.

        Each event is encoded once; clients with the same filter share the messages.
        """
        if not self.clients or not events:
            return
        parts: list[str] = []
        split: list[dict[str, Any]] = []
        for event in events:
            text = json.dumps(event, separators=(",", ":"))
            if len(text) > MAX_MESSAGE and event["type"] == "build_log":
                for piece in _split_log(event):
                    parts.append(json.dumps(piece, separators=(",", ":")))
                    split.append(piece)
            else:
                parts.append(text)
                split.append(event)
        events = split
        messages: dict[frozenset[str] | None, list[str]] = {}
        for client in list(self.clients):
            key = client.filter
            chosen = messages.get(key)
            if chosen is None:
                if key is None:
                    chosen = _messages(parts)
                else:
                    chosen = _messages(
                        [
                            part
                            for part, event in zip(parts, events, strict=True)
                            if event["type"] != "build_log" or event["buildId"] in key
                        ]
                    )
                messages[key] = chosen
            for text in chosen:
                client.offer(text)

    def initial_status(self) -> str:
        builds = self.service.list_builds(limit=INITIAL_BUILDS)
        return json.dumps({"type": "initial_status", "builds": builds}, separators=(",", ":"))

    async def endpoint(self, websocket: WebSocket) -> None:
        await websocket.accept()
        if len(self.clients) >= self.max_clients:
            WS_CLOSED.labels("limit").inc()
            await websocket.close(POLICY_VIOLATION, "too many WebSocket connections")
            return
        client = Client(websocket, self.queue_limit)
        # Registered and given its initial status with no await in between, so no event
        # can fall between the snapshot and the stream.
        self.clients.add(client)
        WS_CONNECTIONS.inc()
        try:
            client.pending.append(self.initial_status())
            client.wake.set()
            await self._serve(client)
        finally:
            self._forget(client)
        if client.closing is not None:
            # A stalled client may never take our close frame: give it a moment, then
            # let uvicorn close the transport.
            code, reason = client.closing
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.websocket.close(code, reason), _CLOSE_TIMEOUT)

    def _forget(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            WS_CONNECTIONS.dec()

    async def _serve(self, client: Client) -> None:
        reader = asyncio.create_task(client.read())
        client.writer = writer = asyncio.create_task(client.write())
        try:
            await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, writer):
                task.cancel()
            for task in (reader, writer):
                # Disconnects surface here as whatever the send or receive raised.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
