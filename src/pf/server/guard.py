"""What a request must look like before pf serve reads it: its Host, its Origin, its body type.

Two refusals keep other web sites out, whatever a token allows (the third, a body
that is not JSON, is schemas.read_json's: only a route that reads a body can tell):

- **Host.** A DNS-rebinding page reaches the server under its own name; the Host header
  must name the bound address, ``localhost``, ``127.0.0.1``, ``[::1]`` or one of
  PF_ALLOWED_HOSTS (``*`` accepts any), port ignored, else 400 ``bad-host``. A request
  without Host (HTTP/1.0) is refused the same way.
- **Origin.** CORS is same-origin unless PF_CORS_ORIGINS lists origins: those (and only
  those) are echoed with ``Vary: Origin`` and credentials allowed. A WebSocket handshake
  that carries an Origin (every browser's does) must come from an allowed host or a
  listed origin, else it is refused with 403; one without (curl, scripts) passes.

Plain ASGI, one pass over the headers, no Request object: every request pays for it and
/api/health must stay above 15k requests a second. Imports pf.errors only.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pf.errors import ConfigError, PfError

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CORS_METHODS = ("GET", "HEAD", "POST", "DELETE", "OPTIONS")
CORS_HEADERS = ("Content-Type", "Authorization", "If-None-Match", "Range")
CORS_EXPOSE = ("ETag", "Retry-After", "Content-Length", "Accept-Ranges", "Content-Range")
_MAX_VERDICTS = 256  # distinct Host values remembered; a flood of new ones clears them


class BadHost(PfError):
    code = "bad-host"
    http_status = 400

    def __init__(self, host: str | None) -> None:
        what = f"Host {host!r} is not" if host is not None else "a request without Host is"
        super().__init__(
            f"{what} served here: name this server by its bound address or localhost, "
            "or add the name to PF_ALLOWED_HOSTS"
        )


class ForeignOrigin(PfError):
    code = "forbidden"
    http_status = 403

    def __init__(self, origin: str) -> None:
        super().__init__(
            f"WebSocket connections from {origin!r} are refused: "
            "connect from this server's own pages, or add the origin to PF_CORS_ORIGINS"
        )


def hostname(value: str) -> str | None:
    """The host of a Host header or an origin's authority, lowercased, without port or
    brackets; None when it is not one."""
    value = value.strip().lower()
    if value.startswith("["):
        inner, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return None
        return inner
    if value.count(":") > 1:
        return value  # a bare IPv6 address, as a bound host is written
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return None
    return name.rstrip(".") or None


def origin_host(origin: str) -> str | None:
    """The host of an Origin header (``https://example.com:8443``); None for ``null``."""
    scheme, sep, authority = origin.partition("://")
    if not sep or not scheme or "/" in authority or "@" in authority:
        return None
    return hostname(authority)


async def refuse(
    scope: Scope, send: Send, error: PfError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer ``error`` as JSON ``{"error", "code"}`` with its status, before the app runs.

    A WebSocket handshake gets the same answer where the server can send one (ASGI's
    ``websocket.http.response``), else a plain refusal (403)."""
    body = json.dumps({"error": error.message, "code": error.code}).encode()
    all_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(headers or ()),
    ]
    if scope["type"] == "websocket":
        if "websocket.http.response" not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        kind = "websocket.http.response"
    else:
        kind = "http.response"
    await send({"type": f"{kind}.start", "status": error.http_status, "headers": all_headers})
    await send({"type": f"{kind}.body", "body": body})


def check_origins(cors_origins: tuple[str, ...]) -> None:
    """Refuse PF_CORS_ORIGINS that would let any site call with the user's credentials."""
    if "*" in cors_origins:
        raise ConfigError(
            "PF_CORS_ORIGINS cannot be '*': listed origins may send credentials, "
            "so name each one (https://app.example.com)"
        )


class Guard:
    """Host, CORS and WebSocket-Origin checks around the whole app (see module)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bound_host: str | None,
        allowed_hosts: tuple[str, ...],
        cors_origins: tuple[str, ...],
    ) -> None:
        check_origins(cors_origins)
        self.app = app
        self.any_host = "*" in allowed_hosts
        names = {*LOCAL_HOSTS, *(h.strip().lower().strip("[]") for h in allowed_hosts)}
        if bound_host:
            names.add(bound_host.strip().lower().strip("[]"))
        self.hosts = frozenset(names)
        self.origins = frozenset(o.rstrip("/").encode("latin-1") for o in cors_origins)
        self._verdicts: dict[bytes, bool] = {}
        self.preflight = [
            (b"access-control-allow-methods", ", ".join(CORS_METHODS).encode()),
            (b"access-control-allow-headers", ", ".join(CORS_HEADERS).encode()),
            (b"access-control-max-age", b"600"),
        ]

    def host_allowed(self, value: bytes) -> bool:
        verdict = self._verdicts.get(value)
        if verdict is None:
            name = hostname(value.decode("latin-1"))
            verdict = name is not None and (self.any_host or name in self.hosts)
            if len(self._verdicts) >= _MAX_VERDICTS:
                self._verdicts.clear()
            self._verdicts[value] = verdict
        return verdict

    def _cors(self, origin: bytes) -> list[tuple[bytes, bytes]] | None:
        if origin not in self.origins:
            return None
        return [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", ", ".join(CORS_EXPOSE).encode()),
            (b"vary", b"Origin"),
        ]

    def _ws_origin_allowed(self, origin: bytes) -> bool:
        if origin in self.origins:
            return True
        name = origin_host(origin.decode("latin-1"))
        return name is not None and (self.any_host or name in self.hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        host = origin = preflight = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value
            elif name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = value
        if host is None or not self.host_allowed(host):
            shown = host.decode("latin-1") if host is not None else None
            await refuse(scope, send, BadHost(shown))
            return
        if kind == "websocket":
            if origin is not None and not self._ws_origin_allowed(origin):
                await refuse(scope, send, ForeignOrigin(origin.decode("latin-1")))
                return
            await self.app(scope, receive, send)
            return
        cors = self._cors(origin) if origin is not None else None
        method = scope["method"]
        if cors is not None and preflight is not None and method == "OPTIONS":
            headers = [*cors, *self.preflight, (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if cors is None:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)
