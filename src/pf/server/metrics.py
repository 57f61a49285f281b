"""The Prometheus registry pf serve reads and the ``GET /metrics`` endpoint.

Metrics are defined beside what they count (engine: builds, queue, cache; server:
HTTP requests, WebSocket clients), all in prometheus_client's default registry; this
module exposes them and defines nothing else; the gauges that are read rather than
counted (engine.vitals) are refreshed as they are read. With several API processes (pf serve
--workers N, server/processes.py) each process keeps its values in files of the
multiprocess folder, and what is read is all of them: counters and histograms summed,
live gauges summed over the processes alive.
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.requests import Request
from starlette.responses import Response

from pf.errors import PfError

log = logging.getLogger("pf.server")

__all__ = ["REGISTRY", "collected", "http_totals", "prometheus"]


def collected(processes: int) -> CollectorRegistry:
    """What to read: this process's registry, or every process's values when there are
    several (the supervisor named their folder in PROMETHEUS_MULTIPROC_DIR)."""
    if processes <= 1:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


def http_totals(registry: CollectorRegistry) -> tuple[int, float]:
    """HTTP requests answered and the seconds they took, in ``registry``."""
    count = registry.get_sample_value("pf_http_request_duration_seconds_count") or 0.0
    seconds = registry.get_sample_value("pf_http_request_duration_seconds_sum") or 0.0
    return int(count), seconds


async def prometheus(request: Request) -> Response:
    """Every metric in the Prometheus text format (0.0.4), the sampled gauges
    (engine.vitals) refreshed first."""
    try:
        await asyncio.to_thread(request.app.state.service.sample)
    except PfError as error:
        # The counters are still worth a scrape while the job queue is away; the stale
        # gauges say so by their age, and the log says why.
        log.warning("metrics: cannot sample the queue: %s", error)
    registry = collected(request.app.state.settings.api_workers)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
