"""Per-client rate limit on build submissions: a token bucket per client, in plain ASGI.

Only the requests that queue work are limited (POST /api/build/..., /api/compile,
/api/tasks/...): reads, artifacts and WebSockets are not. A client is the
authenticated name the auth middleware put in ``scope["pf.client"]`` (it runs before
this one), else the peer's address (``server.api.client_of`` asks this module); IPv6
peers count per /64, since one host commonly holds a whole /64 and could otherwise
send each request from a new address. Each bucket holds up to PF_RATE_BURST tokens
and refills at PF_RATE_LIMIT a minute; a submission takes one, and one that finds
less than one gets 429 with ``Retry-After``. The buckets are bounded: a bucket that
has refilled completely is the same as none and is forgotten first, and past
``MAX_CLIENTS`` the least recently seen client is forgotten (it starts again with a
full burst, which a flood of distinct addresses could earn anyway). Imports
pf.server.errors and starlette's types only.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from collections import OrderedDict

from starlette.types import ASGIApp, Receive, Scope, Send

from pf.server.errors import error_body

# Clients remembered at once: a bucket is about 200 bytes, so 64k of them stay under 15 MB.
MAX_CLIENTS = 65_536
_LIMITED_PREFIXES = ("/api/build/", "/api/tasks/")
_LIMITED_PATHS = frozenset({"/api/compile"})
_IPV6_NETWORK = 64


def client_key(scope: Scope) -> str:
    """``scope["pf.client"]``, else ``addr:<peer>`` (IPv6 peers by their /64)."""
    client: str | None = scope.get("pf.client")
    if client is not None:
        return client
    peer = scope.get("client")
    if not peer:
        return "addr:unknown"
    host = str(peer[0])
    if ":" in host:
        try:
            address = ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return f"addr:{host}"
        if address.ipv4_mapped is not None:
            # An IPv4 peer of a dual-stack socket (``--host ::``): one client per IPv4
            # address, never every IPv4 client in one ::ffff:0:0/64 bucket.
            return f"addr:{address.ipv4_mapped}"
        network = ipaddress.IPv6Network((address, _IPV6_NETWORK), strict=False)
        return f"addr:{network}"
    return f"addr:{host}"


def limited(scope: Scope) -> bool:
    """Whether the request queues work (a submission)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return False
    path: str = scope["path"]
    return path in _LIMITED_PATHS or path.startswith(_LIMITED_PREFIXES)


class Buckets:
    """Token buckets by client key: ``take(key)`` returns 0 when allowed, else the seconds
    until a token is back."""

    def __init__(self, per_minute: int, burst: int, max_clients: int = MAX_CLIENTS) -> None:
        self.rate = per_minute / 60.0  # tokens a second
        self.burst = float(burst)
        self.max_clients = max_clients
        # key -> (tokens, when they were counted); oldest use first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._refill = self.burst / self.rate  # seconds for an empty bucket to be full

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        found = self._buckets.pop(key, None)
        if found is None:
            tokens = self.burst
        else:
            left, since = found
            tokens = min(self.burst, left + (now - since) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        buckets = self._buckets
        # Least recently used first; stop at the first that has not refilled: the rest
        # go when they reach the front, or past the cap.
        while buckets:
            key, (tokens, since) = next(iter(buckets.items()))
            if tokens + (now - since) * self.rate < self.burst and len(buckets) <= self.max_clients:
                break
            del buckets[key]


class RateLimit:
    """ASGI middleware: 429 ``rate-limited`` with Retry-After past a client's bucket."""

    def __init__(self, app: ASGIApp, per_minute: int, burst: int) -> None:
        self.app = app
        self.buckets = Buckets(per_minute, burst) if per_minute > 0 else None
        self._per_minute = per_minute

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.buckets is None or not limited(scope):
            await self.app(scope, receive, send)
            return
        wait = self.buckets.take(client_key(scope))
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        retry_after = max(1, math.ceil(wait))
        body = json.dumps(
            error_body(
                f"too many submissions: at most {self._per_minute} a minute per client",
                "rate-limited",
                f"retry in {retry_after} s",
            )
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
