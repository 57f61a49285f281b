"""Run pf serve: bind the socket, wire store + build service + app, and hand them to uvicorn.

The server is uvicorn with uvloop and httptools, and its sans-I/O websockets layer for
ping/pong heartbeats, the incoming frame cap and permessage-deflate with bounded window
bits. Request heads are bounded in headers and bytes (431) and in time (408), idle
connections close after PF_KEEPALIVE_TIMEOUT, and past PF_MAX_CONNECTIONS a request is
answered 503 (HttpProtocol). The listen backlog is PF_BACKLOG (server/tuning.py raises
the open-file limit and checks the kernel's cap); X-Forwarded-For and -Proto are believed
from PF_TRUSTED_PROXIES only (uvicorn's ProxyHeadersMiddleware); logs are JSON lines at
PF_LOG_LEVEL. SIGTERM or SIGINT stops accepting connections, closes WebSockets (1012),
waits for open requests, then the lifespan lets running builds finish within
PF_SHUTDOWN_GRACE seconds before the service cancels them. Everything heavy is imported
here and only here, so the CLI does not pay for it unless it serves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import math
import socket
import warnings
from pathlib import Path
from typing import Any

import httptools
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import OP_BINARY, OP_TEXT, Frame
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from pf import sandbox
from pf.config import Settings
from pf.engine.service import BuildService
from pf.errors import UsageError
from pf.server import tuning
from pf.server.app import WEB_DIR, create_app
from pf.server.auth import check_exposure
from pf.server.guard import check_origins
from pf.server.logging import log_config
from pf.server.options import ServeOptions
from pf.server.static import Static
from pf.server.ws import WIRE, Outgoing
from pf.store import Store, TokenStore

log = logging.getLogger("pf.server")

WS_WINDOW_BITS = 12  # a 4 KiB deflate window each way
WS_COMPRESS_FROM = 1024  # smaller messages are sent as they are (docs/server.md)
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
        if self._open():
            self._protocol.transport.write(self._frame(message))

    def send_many(self, messages: list[Outgoing]) -> None:
        if self._open() and messages:
            self._protocol.transport.writelines([self._frame(m) for m in messages])

    def _frame(self, message: Outgoing) -> bytes:
        conn = self._protocol.conn
        # Only our permessage-deflate can be negotiated, never with context takeover:
        # its output depends on the window bits alone, so frames are shared by those.
        key = conn.extensions[0].local_max_window_bits if conn.extensions else None  # type: ignore[attr-defined]
        frame = message.frames.get(key)
        if frame is None:
            frame = Frame(OP_TEXT, message.data).serialize(mask=False, extensions=conn.extensions)
            message.frames[key] = frame
        return frame

    def close(self, code: int, reason: str) -> None:
        self._protocol.stop_writing(code, reason)


class _HeadRefused(Exception):
    """Raised in a parser callback to stop parsing a request head past its limits."""


def _refusal(status: int, reason: bytes, code: str, message: str) -> bytes:
    body = json.dumps({"error": message, "code": code}).encode()
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class _Corked:
    """A connection's transport whose writes within one turn of the event loop leave as
    one send: uvicorn writes a response's head and its body separately, which made
    every answer two sends, two loopback segments and two wake-ups of the client.

    Pending bytes go out (``writelines``: one vectored send, no copy) at the end of the
    turn, before a ``close``, or at once past ``FLUSH_AT`` bytes: a response that writes
    more without letting the loop turn meets the real transport's flow control then.
    The bound is above pf's answers and most modules: sent at once from inside the
    response, a 100-build /api/status (about 70 kB) was answered 15% less often than
    sent at the end of the turn. Once the real transport is closing, pending bytes are
    dropped, as it would drop them.
    Everything but writing and closing is the real transport's, and a WebSocket upgrade
    hands the real one on (``handle_websocket_upgrade``).
    """

    FLUSH_AT = 4 * 1024 * 1024

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.real = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0
        self._scheduled = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._pending.append(data)
        self._size += len(data)
        if self._size >= self.FLUSH_AT:
            self.flush()
        elif not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        pending, self._pending, self._size = self._pending, [], 0
        if not pending or self.real.is_closing():
            return
        if len(pending) == 1:
            self.real.write(pending[0])
        else:
            self.real.writelines(pending)

    def close(self) -> None:
        self.flush()
        self.real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded request heads and deadlines for them.

    A request's line and headers together may take ``max_head_bytes`` bytes and
    ``max_headers`` headers (else 431 ``headers-too-large`` and the connection closes,
    before the parser has buffered more than one read), and must be complete within
    ``head_timeout`` seconds of their first byte (else 408 and close: a client sending
    a byte a second holds nothing for long). A connection that sends nothing at all is
    closed after the keep-alive timeout, as an idle one between requests is.

    It relies on these parts of uvicorn 0.54's HttpToolsProtocol (uvicorn is pinned):
    ``data_received`` is replaced (it feeds ``self.parser`` and handles its upgrade and
    error exceptions as uvicorn does); ``connection_made``, ``connection_lost``,
    ``on_message_begin``, ``on_url``, ``on_header`` and ``on_headers_complete`` are
    extended; ``timeout_keep_alive_task``/``timeout_keep_alive_handler`` are reused.
    """

    max_headers = 100
    max_head_bytes = 16 * 1024
    head_timeout = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head: int | None = None  # bytes of the request head so far (at most)
        self._header_count = 0
        self._chunk = 0
        self._refused: bytes | None = None
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _Corked(transport, self.loop)  # type: ignore[assignment]
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol gets the real transport: its frames have their own
        # batching, and its backlog is measured on the transport's buffer.
        corked = self.transport
        if isinstance(corked, _Corked):
            corked.flush()
            self.transport = corked.real
        super().handle_websocket_upgrade()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._unset_keepalive_if_required()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._head is not None:
            self._head += len(data)
            if self._head > self.max_head_bytes:
                self._refuse_head()
                return
        self._chunk = len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if self._refused is not None:
                self._refuse_head()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        # A head begun in this read and still incomplete counts the whole read: an upper
        # bound, since the parser does not say where in the read the request began.
        if self._head is not None and self._head > self.max_head_bytes:
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head = self._chunk
        self._header_count = 0
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_too_slow)

    def on_url(self, url: bytes) -> None:
        self._over(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.max_headers:
            self._refused = b"too many headers"
            raise _HeadRefused
        self._over(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head = None
        self._stop_head_timer()
        super().on_headers_complete()

    def _over(self, size: int) -> None:
        # Within one read: the head's pieces so far, exact, against the bound.
        if self._head is not None and size > self.max_head_bytes:
            self._refused = b"headers too large"
            raise _HeadRefused

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse_head(self) -> None:
        self._close_with(
            _refusal(
                431,
                b"Request Header Fields Too Large",
                "headers-too-large",
                f"the request's headers are too large: at most {self.max_headers} headers "
                f"and {self.max_head_bytes} bytes with the request line",
            )
        )

    def _head_too_slow(self) -> None:
        self._head_timer = None
        self._close_with(
            _refusal(
                408,
                b"Request Timeout",
                "request-timeout",
                f"the request's headers did not arrive within {self.head_timeout:g} s",
            )
        )

    def _close_with(self, response: bytes) -> None:
        self._head = None
        self._stop_head_timer()
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()


def http_protocol(settings: Settings) -> type[HttpProtocol]:
    """The HTTP protocol class with PF_MAX_HEADERS, PF_MAX_HEADER_SIZE, PF_HEADER_TIMEOUT."""

    class Bounded(HttpProtocol):
        max_headers = settings.max_headers
        max_head_bytes = settings.max_header_size
        head_timeout = settings.header_timeout

    return Bounded


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
    at ``/_pf/vendor/`` (uPlot as published, the editor bundle setup built in web/vendor/)."""
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
    sock = prepare(settings, options, insecure_no_auth=insecure_no_auth)
    return serve_process(settings, options, sock, insecure_no_auth=insecure_no_auth)


def prepare(settings: Settings, options: ServeOptions, *, insecure_no_auth: bool) -> socket.socket:
    """What pf serve does once, before any API process serves: check the store and the
    exposure, bind the listening socket, log where it listens and what the sandbox can do.

    The store is closed again: each API process opens its own (a forked connection would
    be shared by two processes)."""
    logging.config.dictConfig(log_config(settings.log_level))
    check_origins(settings.cors_origins)  # as create_app does, before "listening" is said
    store = Store.for_settings(settings)
    # Before uvicorn: a database pf cannot use is one line from the CLI, not a traceback
    # from the lifespan (the service's start finds the store open).
    store.open()
    try:
        check_exposure(
            TokenStore(store.db),
            options.host,
            insecure_no_auth,
            proxied=bool(settings.trusted_proxies),
        )
    finally:
        store.close()
    # Before the fork of several API processes: each inherits the raised limit.
    tuning.raise_open_files(settings)
    tuning.check_backlog(settings)
    sock = bind(options.host, options.port, settings.backlog)  # fail fast on a taken port
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
            "processes": settings.api_workers,
        },
    )
    unconfinable = sandbox.start_up(settings, log, "pf serve")
    if unconfinable is not None:
        # Fail closed: the server runs (history, artifacts, tasks) but refuses compiles,
        # and /api/ready says why.
        log.error(f"compiles will be refused: {unconfinable}", extra={"hint": unconfinable.hint})
    if insecure_no_auth:
        log.warning(
            "--insecure-no-auth: while no token exists, anyone who reaches this server can "
            "run builds and tasks (pf token create NAME --scope admin closes it)",
            extra={"url": f"http://{shown}:{port}"},
        )
    return sock


def serve_process(
    settings: Settings, options: ServeOptions, sock: socket.socket, *, insecure_no_auth: bool
) -> int:
    """One API process on the listening socket ``sock``, until SIGTERM/SIGINT; 0 after a
    clean stop, 1 when its start-up failed."""
    store = Store.for_settings(settings)
    store.open()
    service = BuildService(settings, store, options.projects)
    app = create_app(
        settings,
        service,
        static_app(options.root, settings),
        root_dir=options.root,
        bound_host=options.host,
        insecure_no_auth=insecure_no_auth,
        profile=options.profile,
    )
    config = uvicorn_config(settings, options, app)
    server = uvicorn.Server(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server.run(sockets=[sock])
    return 0 if server.started else 1


def uvicorn_config(settings: Settings, options: ServeOptions, app: ASGIApp) -> uvicorn.Config:
    """uvicorn as pf serve runs it: pf's protocols, limits, timeouts and logs."""
    return uvicorn.Config(
        app,
        loop="uvloop",
        http=http_protocol(settings),
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
        backlog=settings.backlog,
        timeout_keep_alive=math.ceil(settings.keepalive_timeout),
        # Past it, a request is answered 503 at once (idle connections count).
        limit_concurrency=settings.max_connections,
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace),
        server_header=False,
        # X-Forwarded-For and X-Forwarded-Proto count only from PF_TRUSTED_PROXIES: the
        # rate limit, fair share and access log tell clients apart by the socket's peer
        # address (or their token), which only a trusted proxy may speak for. Its rightmost
        # untrusted address is the client. None listed: uvicorn's middleware is left out
        # (it would default to trusting loopback, and FORWARDED_ALLOW_IPS).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
    )
