"""Who is calling pf serve, and whether their token's scope allows what they ask.

Scopes nest: ``read`` (every GET under /api but the open ones, /metrics, built modules
under /wasm/, /asm/ and /llvm/, the WebSocket), ``build`` (also submitting builds and
cancelling its own), ``admin`` (also the Pfyfile tasks and cancelling any build). Always
open: /api/health, /api/ready, /api/session, /openapi.json and the pages and static
files. A request shows ``Authorization: Bearer <token>`` or the dashboard's
``pf_session`` cookie (browsers cannot add headers to a WebSocket handshake, but send
the cookie).

While no token exists, a server bound to loopback is open, as a local development tool
should be: every request acts as an anonymous admin. Once any token exists, a request
without a valid one gets 401 and one with too small a scope 403. pf serve refuses to bind
a non-loopback address while no token exists (unless --insecure-no-auth).

Strategy. Tokens and sessions are read whole from the database into dicts keyed by the
SHA-256 of their secrets, and re-read every REFRESH seconds off the event loop, so a
token created or revoked by ``pf token`` takes effect within about a second while a
request costs one hash and one dict lookup, never a query. Sign-ins and sign-outs made
by this process apply at once. Imports pf.store (tokens), pf.errors, server.guard and
engine.layout (the published modules' URL prefixes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from pf.engine.layout import TARGET_DIRS
from pf.errors import PfError, UsageError
from pf.server.guard import refuse
from pf.store.tokens import SCOPES, Session, Token, TokenStore

log = logging.getLogger("pf.server")

REFRESH = 0.5  # seconds between reads of the token and session tables
RELOAD_ON_MISS = 0.1  # a sign-in with an unknown token re-reads the tables, at most this often
TOUCH_EVERY = 10.0  # seconds between writes of the tokens' last use
SESSION_COOKIE = "pf_session"
MAX_KNOWN_HEADERS = 1024  # valid Authorization values remembered between table reads
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}
_OPEN_API = frozenset({"/api/health", "/api/ready", "/api/session"})
_COOKIE_PREFIX = SESSION_COOKIE.encode() + b"="


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller: the token's name and scope."""

    name: str
    scope: str

    def allows(self, needed: str) -> bool:
        return _RANK[self.scope] >= _RANK[needed]

    @property
    def client(self) -> str:
        return f"token:{self.name}"


# What every request acts as while no token exists on a loopback bind.
ANONYMOUS = Principal("anonymous", "admin")


class Unauthorized(PfError):
    code = "unauthorized"
    http_status = 401

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "authentication required: send Authorization: Bearer <token> "
            "(make one with: pf token create NAME --scope read)"
        )


class ScopeTooSmall(PfError):
    code = "forbidden"
    http_status = 403

    def __init__(self, what: str, needed: str, principal: Principal) -> None:
        super().__init__(
            f"{what} needs scope '{needed}'; token '{principal.name}' has '{principal.scope}'"
        )


# Built modules, published at the original's paths (engine.layout): /wasm/, /asm/, /llvm/.
_PUBLISHED = tuple(f"/{target}/" for target in TARGET_DIRS)


def required_scope(method: str, path: str) -> str | None:
    """The scope an HTTP request needs, None when it is open. Any state-changing /api
    request not listed here needs admin: a new route is closed until it is placed."""
    if path.startswith("/api/") or path == "/api":
        if path in _OPEN_API:
            return None
        if method in ("GET", "HEAD", "OPTIONS"):
            return "admin" if path == "/api/tasks" else "read"
        if method == "POST" and (path == "/api/compile" or path.startswith("/api/build/")):
            return "build"
        if method == "DELETE" and path.startswith("/api/builds/") and path.count("/") == 3:
            return "build"  # its own builds; api.build_cancel checks whose it is
        return "admin"
    if path == "/metrics" or path.startswith(_PUBLISHED):
        return "read"
    return None


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server to this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_private(host: str, proxied: bool) -> bool:
    """Whether serving on ``host`` keeps the API to this machine: a loopback address with
    no reverse proxy in front (``proxied``: PF_TRUSTED_PROXIES is set), since a proxy
    relays anyone's requests to loopback."""
    return is_loopback(host) and not proxied


def check_exposure(
    tokens: TokenStore, host: str, insecure_no_auth: bool, *, proxied: bool = False
) -> None:
    """Refuse to serve beyond this machine (a non-loopback address, or any behind a
    reverse proxy) while no token could authenticate anyone (pf serve warns of
    ``insecure_no_auth`` once its logging is set up)."""
    if is_private(host, proxied):
        return
    tokens.open()
    if tokens.list():
        return
    if insecure_no_auth:
        return
    where = f"{host} behind the reverse proxies of PF_TRUSTED_PROXIES" if proxied else host
    raise UsageError(
        f"refusing to serve {where} without authentication: run "
        "`pf token create NAME --scope admin` first (or pass --insecure-no-auth)"
    )


def _digest(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()


class Credentials:
    """The tokens and sessions in memory, re-read from the database every REFRESH seconds."""

    def __init__(self, store: TokenStore, session_ttl: float) -> None:
        self.store = store
        self.session_ttl = session_ttl
        self.tokens: dict[str, Principal] = {}
        self.sessions: dict[str, tuple[Principal, float]] = {}
        # Sign-ins and sign-outs of this process, by epoch: re-applied over a snapshot
        # that was read before they were made.
        self._epoch = 0
        self._local: list[tuple[int, str, tuple[Principal, float] | None]] = []
        self._used: dict[str, float] = {}
        self._touched = time.monotonic()
        self._loaded = 0.0
        self._task: asyncio.Task[None] | None = None
        # Authorization header values already found valid since the last read of the
        # tables: a client sends the same header on every request, and this spares each
        # one a parse and a SHA-256 (about a microsecond, a tenth of what auth may cost).
        self._headers: dict[bytes, Principal] = {}

    @property
    def required(self) -> bool:
        """Whether any token exists (then every protected request must show one)."""
        return bool(self.tokens)

    def _apply(self, tokens: dict[str, Token], sessions: dict[str, Session], since: int) -> None:
        self.tokens = {h: Principal(t.name, t.scope) for h, t in tokens.items()}
        # Rebuilt from the tables just read: a revoked token stops answering here too.
        self._headers = {}
        fresh = {h: (Principal(s.token, s.scope), s.expires_at) for h, s in sessions.items()}
        later = [change for change in self._local if change[0] > since]
        for _, key, value in later:
            if value is None:
                fresh.pop(key, None)
            else:
                fresh[key] = value
        self.sessions = fresh
        self._local = later

    def _read(self, touch: dict[str, float]) -> tuple[dict[str, Token], dict[str, Session]]:
        if touch:
            self.store.touch(touch)
        return self.store.snapshot()

    async def load(self) -> None:
        """Read the tables now (and write the tokens' last use when it is time)."""
        since = self._epoch
        touch: dict[str, float] = {}
        if self._used and time.monotonic() - self._touched >= TOUCH_EVERY:
            touch, self._used = self._used, {}
            self._touched = time.monotonic()
        tokens, sessions = await asyncio.to_thread(self._read, touch)
        self._apply(tokens, sessions, since)
        self._loaded = time.monotonic()

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH)
            try:
                await self.load()
            except PfError as error:
                # The last good tables stay in force; the next round tries again.
                log.warning("cannot re-read tokens", extra={"error": error.message})

    async def start(self) -> None:
        await self.load()
        self._task = asyncio.create_task(self._refresh(), name="pf-credentials")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._used:
            used, self._used = self._used, {}
            await asyncio.to_thread(self.store.touch, used)

    def token(self, secret: bytes) -> Principal | None:
        principal = self.tokens.get(_digest(secret))
        if principal is not None:
            self._used[principal.name] = time.time()
        return principal

    def session(self, secret: bytes) -> Principal | None:
        found = self.sessions.get(_digest(secret))
        if found is None or found[1] <= time.time():
            return None
        self._used[found[0].name] = time.time()
        return found[0]

    def identify(self, headers: list[tuple[bytes, bytes]]) -> Principal | None:
        """The caller a request's Authorization header (else its session cookie) names."""
        cookie = None
        for name, value in headers:
            if name == b"authorization":
                known = self._headers.get(value)
                if known is not None:
                    self._used[known.name] = time.time()
                    return known
                scheme, _, secret = value.strip().partition(b" ")
                if scheme.lower() != b"bearer":
                    return None
                found = self.token(secret.strip())
                if found is not None:
                    if len(self._headers) >= MAX_KNOWN_HEADERS:
                        self._headers.clear()
                    self._headers[value] = found
                return found
            if name == b"cookie":
                cookie = value
        if cookie is None:
            return None
        for part in cookie.split(b";"):
            part = part.strip()
            if part.startswith(_COOKIE_PREFIX):
                return self.session(part[len(_COOKIE_PREFIX) :])
        return None

    async def sign_in(self, token: str) -> tuple[Principal, float, str] | None:
        """A session for a token's secret: (principal, expiry, cookie secret), or None."""
        key = _digest(token.encode())
        if key not in self.tokens and time.monotonic() - self._loaded >= RELOAD_ON_MISS:
            # A token made a moment ago signs in at once; guessing costs at most this.
            await self.load()
        principal = self.tokens.get(key)
        if principal is None:
            return None
        session, secret = await asyncio.to_thread(
            self.store.open_session, principal.name, self.session_ttl
        )
        self._epoch += 1
        value = (principal, session.expires_at)
        self.sessions[_digest(secret.encode())] = value
        self._local.append((self._epoch, _digest(secret.encode()), value))
        return principal, session.expires_at, secret

    async def sign_out(self, secret: bytes) -> None:
        key = _digest(secret)
        await asyncio.to_thread(self.store.close_session, secret.decode("latin-1"))
        self._epoch += 1
        self.sessions.pop(key, None)
        self._local.append((self._epoch, key, None))


class Authenticate:
    """Puts the caller in the ASGI scope (``pf.principal``, ``pf.client``) or refuses.

    A request that needs no scope passes untouched and unread; the handlers of
    /api/session identify their caller themselves."""

    def __init__(self, app: ASGIApp, credentials: Credentials, open_when_no_token: bool) -> None:
        self.app = app
        self.credentials = credentials
        self.open_when_no_token = open_when_no_token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            needed = required_scope(scope["method"], scope["path"])
        elif kind == "websocket":
            needed = "read"
        else:
            needed = None
        if needed is None:
            await self.app(scope, receive, send)
            return
        credentials = self.credentials
        if not credentials.required and self.open_when_no_token:
            scope["pf.principal"] = ANONYMOUS
            await self.app(scope, receive, send)
            return
        principal = credentials.identify(scope["headers"])
        if principal is None:
            await refuse(scope, send, Unauthorized(), [(b"www-authenticate", b"Bearer")])
            return
        if not principal.allows(needed):
            what = "the WebSocket" if kind == "websocket" else f"{scope['method']} {scope['path']}"
            await refuse(scope, send, ScopeTooSmall(what, needed, principal))
            return
        scope["pf.principal"] = principal
        scope["pf.client"] = principal.client
        await self.app(scope, receive, send)
