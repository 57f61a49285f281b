"""Run pf serve: bind the socket, wire store + build service + app, and hand them to uvicorn.

The server is uvicorn with uvloop and httptools, and its sans-I/O websockets layer for
ping/pong heartbeats, the incoming frame cap and permessage-deflate with bounded window
bits. Keep-alive is on; the listen backlog is an option; logs are JSON lines at
PF_LOG_LEVEL. SIGTERM or SIGINT stops accepting connections, closes WebSockets (1012),
waits for open requests, then the lifespan lets running builds finish within
PF_SHUTDOWN_GRACE seconds before the service cancels them. Everything heavy is imported
here and only here, so the CLI does not pay for it unless it serves.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import OP_BINARY, OP_TEXT, Frame
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from pf.config import Settings
from pf.engine.service import BuildService
from pf.errors import UsageError
from pf.server.app import WEB_DIR, create_app
from pf.server.auth import check_exposure
from pf.server.logging import log_config
from pf.server.static import Static
from pf.server.ws import WIRE, Outgoing
from pf.store import Store, TokenStore

log = logging.getLogger("pf.server")

KEEP_ALIVE_SECONDS = 5
WS_WINDOW_BITS = 12  # a 4 KiB deflate window each way
WS_COMPRESS_FROM = 1024  # smaller messages are sent as they are (API.md)
CLOSE_TIMEOUT = 1.0  # seconds a closed-by-us peer has to answer before it is cut off


class _Deflate(PerMessageDeflate):
    """permessage-deflate that sends messages under 1 KiB uncompressed: RFC 7692 lets
    each message choose, and without context takeover nothing else depends on it. It
    halves the fan-out cost of small events (61 -> 33 us a client, measured)."""

    def encode(self, frame: Frame) -> Frame:
        if frame.opcode in (OP_TEXT, OP_BINARY) and frame.fin:
            if len(frame.data) < WS_COMPRESS_FROM:
                return frame
        return super().encode(frame)


class _DeflateFactory(ServerPerMessageDeflateFactory):
    def process_request_params(
        self, params: Any, accepted_extensions: Any
    ) -> tuple[list[tuple[str, str | None]], PerMessageDeflate]:
        response, ext = super().process_request_params(params, accepted_extensions)
        return response, _Deflate(
            ext.remote_no_context_takeover,
            ext.local_no_context_takeover,
            ext.remote_max_window_bits,
            ext.local_max_window_bits,
            ext.compress_settings,
        )


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, with what the hub (server/ws.py) needs.

    Its permessage-deflate keeps no context between messages (an idle client then holds
    no zlib state: 40 KB a connection otherwise, measured, and 1,000 idle clients must
    fit in 80 MB) and leaves messages under 1 KiB uncompressed. It is also the hub's
    Wire (the ``pf.wire`` scope extension): messages written synchronously as frame
    bytes shared by every connection with the same wire format, without a task, an
    await or an encoding per connection.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        extensions = []
        if self.config.ws_per_message_deflate:
            deflate = _DeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=WS_WINDOW_BITS,
                client_max_window_bits=WS_WINDOW_BITS,
                compress_settings={"memLevel": 5},
            )
            extensions.append(deflate)
        self.conn = ServerProtocol(
            extensions=extensions,
            max_size=self.config.ws_max_size,
            logger=logging.getLogger("uvicorn.error"),
        )
        # asyncio's Queue and Event hold four deques of 600 bytes between them; a
        # connection receives a message at a time and has one writer waiting at most.
        self.queue = _Inbox()  # type: ignore[assignment]
        self.writable = _Flag()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.response.status_code == 101:
            # The app's task exists but has not run yet: it will find its Wire.
            self.scope["extensions"][WIRE] = {"wire": _Wire(self)}
        # The scope has its own copy of the headers, and websockets' parser keeps the
        # request as long as the connection lives: 2 KB a connection.
        event.headers.clear()

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            self.response.headers.clear()  # sent, and never read again

    def stop_writing(self, code: int, reason: str) -> None:
        """Send a close frame now, behind whatever is buffered; the app's next receive()
        is the disconnect; a peer that does not answer in CLOSE_TIMEOUT is cut off."""
        if self.close_sent or self.disconnected or self.transport.is_closing():
            return
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.conn.send_close(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()
        # abort, not close: close would wait for a buffer that a stalled peer never reads.
        self.close_timer = self.loop.call_later(CLOSE_TIMEOUT, self.transport.abort)


class _Inbox:
    """What uvicorn's protocol needs of its asyncio.Queue of ASGI receive events."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)

    def empty(self) -> bool:
        return not self._items


class _Flag:
    """What uvicorn's protocol needs of its asyncio.Event ``writable``."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = True
        self._waiters: list[asyncio.Future[None]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


class _Wire:
    """The hub's synchronous writes to one connection (the Wire of server/ws.py)."""

    __slots__ = ("_protocol",)

    def __init__(self, protocol: WebSocketProtocol) -> None:
        self._protocol = protocol

    def _open(self) -> bool:
        p = self._protocol
        return not (p.close_sent or p.disconnected) and p.conn.state is State.OPEN

    def writable(self) -> bool:
        return self._protocol.writable.is_set() and self._open()

    async def wait_writable(self) -> bool:
        await self._protocol.writable.wait()  # also set when the connection is lost
        return self._open()

    def send(self, message: Outgoing) -> None:
        if not self._open():
            return
        conn = self._protocol.conn
        # Only our permessage-deflate can be negotiated, never with context takeover:
        # its output depends on the window bits alone, so frames are shared by those.
        key = conn.extensions[0].local_max_window_bits if conn.extensions else None  # type: ignore[attr-defined]
        frame = message.frames.get(key)
        if frame is None:
            frame = Frame(OP_TEXT, message.data).serialize(mask=False, extensions=conn.extensions)
            message.frames[key] = frame
        self._protocol.transport.write(frame)

    def close(self, code: int, reason: str) -> None:
        self._protocol.stop_writing(code, reason)


@dataclass(frozen=True)
class ServeOptions:
    """What ``pf serve`` was asked for on its command line."""

    host: str
    port: int
    root: Path
    projects: Path
    backlog: int
    ws_ping_interval: float
    ws_ping_timeout: float


def bind(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket; port 0 picks a free port (read it back from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port, or stop the process that uses it",
        ) from exc
    sock.listen(backlog)
    return sock


def static_app(root: Path, settings: Settings) -> Static:
    """The web root at ``/`` with its SPA index (``/wasm/...`` included, as the original),
    and pf's own page scripts and styles at ``/_pf/`` with the npm packages setup installed
    at ``/_pf/vendor/``."""
    index = root / "index.html"
    roots = [
        ("/_pf/vendor/uplot", WEB_DIR / "node_modules" / "uplot" / "dist"),
        ("/_pf", WEB_DIR),
        ("/", root),
    ]
    return Static(roots, spa_index=index if index.is_file() else None, cache_dir=settings.cache_dir)


def serve(settings: Settings, options: ServeOptions, *, insecure_no_auth: bool = False) -> int:
    """Serve until SIGTERM/SIGINT; 0 after a clean stop, 1 when start-up failed.

    A non-loopback address is refused (UsageError) while no token exists, unless
    ``insecure_no_auth``."""
    store = Store.for_settings(settings)
    check_exposure(TokenStore(store.db), options.host, insecure_no_auth)
    sock = bind(options.host, options.port, options.backlog)  # fail fast on a taken port
    service = BuildService(settings, store, options.projects)
    app = create_app(
        settings,
        service,
        static_app(options.root, settings),
        root_dir=options.root,
        bound_host=options.host,
        insecure_no_auth=insecure_no_auth,
    )
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        ws=WebSocketProtocol,
        ws_max_size=settings.ws_max_size,
        ws_ping_interval=options.ws_ping_interval,
        ws_ping_timeout=options.ws_ping_timeout,
        ws_per_message_deflate=True,
        lifespan="on",
        log_config=log_config(settings.log_level),
        # A JSON line per request costs a fifth of /api/health's throughput: request
        # logs are for debugging.
        access_log=settings.log_level == "debug",
        backlog=options.backlog,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace),
        server_header=False,
        # pf reads neither the client's address nor the scheme: the middleware would
        # only cost every request and every WebSocket a call.
        proxy_headers=False,
    )
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "pf serve listening",
        extra={
            "url": f"http://{shown}:{port}",
            "port": port,
            "root": str(options.root),
            "projects": str(options.projects),
            "database": store.url,
        },
    )
    if insecure_no_auth:
        log.warning(
            "--insecure-no-auth: while no token exists, anyone who reaches this server can "
            "run builds and tasks (pf token create NAME --scope admin closes it)",
            extra={"url": f"http://{shown}:{port}"},
        )
    server = uvicorn.Server(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server.run(sockets=[sock])
    return 0 if server.started else 1
