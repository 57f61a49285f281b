"""The one Prometheus registry of the process and the ``GET /metrics`` endpoint.

Metrics are defined beside what they count (engine: builds, queue, cache; server:
HTTP requests, WebSocket clients), all in this registry; this module exposes it and
defines nothing else.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["REGISTRY", "prometheus"]


async def prometheus(request: Request) -> Response:
    """Every metric in the Prometheus text format (0.0.4)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
