"""Admin-only looks inside a running pf serve: where its time goes and where its memory
grows (docs/api.md, "Debugging a running server").

``GET /api/debug/profile?seconds=S`` samples the process's event-loop thread for S
seconds (at most PF_PROFILE_MAX_SECONDS) with pyinstrument and answers the profile as
pyinstrument's HTML page, or as speedscope JSON (``format=speedscope``). Every request,
WebSocket fan-out and handler runs on that thread; the compilers run in other
processes, which a Python profiler cannot see into anyway. One profile at a time
per process (409 otherwise): two would each slow what the other measures.

``/api/debug/memory``: tracemalloc. Tracing costs (every allocation records its
frames), so it runs only once asked: ``POST`` starts it (``{frames}``), ``DELETE``
stops it, or PF_TRACEMALLOC starts it with the process. ``GET ?top=N`` answers the N
allocation sites holding the most memory, each with its growth since the previous GET
of this process, so two GETs a while apart show what grows. The previous look is kept
as its top KEPT sites only (bounded whatever the heap holds).

With several API processes, each answers for itself: the answer says which (``pid``).
"""

from __future__ import annotations

import asyncio
import math
import os
import time
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pf.errors import PfError
from pf.server import schemas
from pf.server.schemas import InvalidBody

PROFILE_INTERVAL = 0.001  # seconds between samples
DEFAULT_SECONDS = 5.0
FORMATS = ("html", "speedscope")
MAX_TOP = 100
DEFAULT_TOP = 20
PROFILE_FORMAT: dict[str, Any] = {"type": "string", "enum": list(FORMATS), "default": "html"}
TOP: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_TOP, "default": DEFAULT_TOP}
KEPT = 10 * MAX_TOP  # sites of the previous look kept to compute growth against
# tracemalloc's own bookkeeping and the import system are never the answer.
_IGNORED = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
    tracemalloc.Filter(False, "<unknown>"),
)


class ProfileRunning(PfError):
    code = "profile-running"
    http_status = 409

    def __init__(self) -> None:
        super().__init__(
            "a profile of this process is already being taken",
            hint="wait for it to finish (at most PF_PROFILE_MAX_SECONDS), then ask again",
        )


class TracingOff(PfError):
    code = "tracemalloc-off"
    http_status = 409

    def __init__(self) -> None:
        super().__init__(
            "memory allocations are not being traced in this process",
            hint="POST /api/debug/memory with {} starts tracing (or set PF_TRACEMALLOC and "
            "restart); then GET it twice, a while apart, to see what grows",
        )


Site = tuple[str, int]  # file, line


@dataclass
class Debugging:
    """One process's profiling and tracing state (``app.state.debugging``)."""

    max_seconds: float
    profiling: asyncio.Lock = field(default_factory=asyncio.Lock)
    previous: dict[Site, tuple[int, int]] = field(default_factory=dict)  # size, count
    previous_at: float | None = None

    def start_tracing(self, frames: int) -> None:
        if tracemalloc.is_tracing():
            return
        tracemalloc.start(frames)
        self.previous.clear()
        self.previous_at = None

    def stop_tracing(self) -> None:
        tracemalloc.stop()
        self.previous.clear()
        self.previous_at = None

    def look(self, top: int) -> dict[str, Any]:
        """The ``top`` sites holding the most traced memory, and each one's growth since
        the previous look (call from a thread: a snapshot walks every traced block)."""
        if not tracemalloc.is_tracing():
            raise TracingOff
        snapshot = tracemalloc.take_snapshot().filter_traces(_IGNORED)
        stats = snapshot.statistics("lineno")
        now = time.time()
        current, peak = tracemalloc.get_traced_memory()
        sites = []
        for stat in stats[:top]:
            frame = stat.traceback[0]
            before = self.previous.get((frame.filename, frame.lineno))
            sites.append(
                {
                    "file": frame.filename,
                    "line": frame.lineno,
                    "size": stat.size,
                    "count": stat.count,
                    "sizeGrowth": None if before is None else stat.size - before[0],
                    "countGrowth": None if before is None else stat.count - before[1],
                }
            )
        since = self.previous_at
        self.previous = {
            (s.traceback[0].filename, s.traceback[0].lineno): (s.size, s.count)
            for s in stats[:KEPT]
        }
        self.previous_at = now
        return {
            "pid": os.getpid(),
            "frames": tracemalloc.get_traceback_limit(),
            "traced": current,
            "tracedPeak": peak,
            "since": since,
            "sites": sites,
        }


def _seconds(request: Request, most: float) -> float:
    raw = request.query_params.get("seconds")
    if raw is None:
        return min(DEFAULT_SECONDS, most)
    try:
        # Length first: float() of a huge string is slow; nan compares false below.
        value = float(raw) if len(raw) <= 32 else math.nan
    except ValueError:
        value = math.nan
    if not 0 < value <= most:
        raise InvalidBody(
            f"query parameter 'seconds' must be a number above 0 and at most {most:g} "
            "(PF_PROFILE_MAX_SECONDS)"
        )
    return value


def _debugging(request: Request) -> Debugging:
    debugging: Debugging = request.app.state.debugging
    return debugging


async def profile(request: Request) -> Response:
    """Sample this process for ``?seconds=`` and answer the profile."""
    debugging = _debugging(request)
    seconds = _seconds(request, debugging.max_seconds)
    kind = schemas.filter_param(request, "format", PROFILE_FORMAT) or "html"
    if debugging.profiling.locked():
        raise ProfileRunning
    from pyinstrument import Profiler

    async with debugging.profiling:
        # Not async-aware: the whole thread is sampled, whichever task is running,
        # rather than this handler's own awaits.
        profiler = Profiler(interval=PROFILE_INTERVAL, async_mode="disabled")
        profiler.start()
        try:
            await asyncio.sleep(seconds)
        finally:
            session = profiler.stop()
    if kind == "speedscope":
        from pyinstrument.renderers import SpeedscopeRenderer

        # Every frame, however brief: a server profiled under light load spends most of
        # the window idle, and the default 1% cut-off would leave only the event loop.
        renderer = SpeedscopeRenderer(processor_options={"filter_threshold": 0})
        text = await asyncio.to_thread(renderer.render, session)
        return Response(text, media_type="application/json")
    text = await asyncio.to_thread(profiler.output_html)
    return Response(text, media_type="text/html; charset=utf-8")


def _top(request: Request) -> int:
    raw = request.query_params.get("top")
    if raw is None:
        return DEFAULT_TOP
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or not 1 <= int(raw) <= MAX_TOP:
        raise InvalidBody(f"query parameter 'top' must be an integer from 1 to {MAX_TOP}")
    return int(raw)


async def memory(request: Request) -> Response:
    """The top allocation sites and their growth since the previous look."""
    look = await asyncio.to_thread(_debugging(request).look, _top(request))
    return JSONResponse(look)


async def memory_start(request: Request) -> Response:
    """Start tracing allocations (no change when already tracing)."""
    settings = request.app.state.settings
    frames = schemas.trace_frames(await schemas.read_json(request, settings.max_body))
    _debugging(request).start_tracing(frames)
    return JSONResponse(_tracing_state())


async def memory_stop(request: Request) -> Response:
    """Stop tracing allocations and forget the previous look."""
    _debugging(request).stop_tracing()
    return JSONResponse(_tracing_state())


def _tracing_state() -> dict[str, Any]:
    tracing = tracemalloc.is_tracing()
    return {
        "pid": os.getpid(),
        "tracing": tracing,
        "frames": tracemalloc.get_traceback_limit() if tracing else 0,
    }
