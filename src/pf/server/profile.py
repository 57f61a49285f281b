"""``pf serve --profile FILE``: the whole run of an API process, from the app's start to
its shutdown, sampled by pyinstrument and written as the app's lifespan ends.

FILE ending in ``.json`` gets speedscope JSON (for the speedscope viewer), any other name
pyinstrument's HTML page (self-contained: open it in a browser). With several API
processes each writes its own, the pid before the suffix (``run.12345.html``). Only the
event-loop thread is sampled, as GET /api/debug/profile does (server/debug.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("pf.server")

INTERVAL = 0.001  # seconds between samples


def destination(path: Path, *, several: bool) -> Path:
    """Where this process writes its profile."""
    return path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}") if several else path


@contextlib.contextmanager
def profiled(path: Path | None, *, several: bool = False) -> Iterator[None]:
    """Profile what runs inside, and write it to ``path`` (nothing when None)."""
    if path is None:
        yield
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=INTERVAL, async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        session = profiler.stop()
        target = destination(path, several=several)
        if target.suffix == ".json":
            from pyinstrument.renderers import SpeedscopeRenderer

            text = SpeedscopeRenderer().render(session)
        else:
            text = profiler.output_html()
        target.write_text(text)
        log.info("profile written", extra={"path": str(target), "seconds": session.duration})
