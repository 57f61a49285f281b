"""HTTP middleware of pf serve: request counting and timing (CORS is guard.py's).

Plain ASGI (no per-request Request object), because every request pays for it:
/api/health must stay above 15k requests a second on two cores. The request
counters live here, beside what they count, and register with the one registry that
server/metrics.py exposes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "pf_http_requests_total", "HTTP requests answered, by method and status", ["method", "status"]
)
HTTP_DURATION = Histogram(
    "pf_http_request_duration_seconds",
    "Time from request to the end of the response",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
# Labels take only bounded values: an unknown method is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass
class RequestStats:
    """Totals for /api/metrics (requestCount, avgRequestTime)."""

    count: int = 0
    seconds: float = 0.0


class RequestMetrics:
    """Counts every HTTP request and times it to the last byte of its response."""

    def __init__(self, app: ASGIApp, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats
        self._children: dict[tuple[str, int], Counter] = {}

    def _count(self, method: str, status: int, elapsed: float) -> None:
        self.stats.count += 1
        self.stats.seconds += elapsed
        key = (method if method in _METHODS else "other", status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = HTTP_REQUESTS.labels(key[0], str(status))
        child.inc()
        HTTP_DURATION.observe(elapsed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            self._count(scope["method"], status, time.perf_counter() - started)
