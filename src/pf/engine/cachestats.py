"""What ``pf cache stats`` reports: the compile cache and the task runs' compiler caches.

The compile cache (``PF_CACHE_DIR``) is measured on disk: its entries, blobs and bytes
against ``PF_CACHE_MAX_BYTES``. Its hits are not counted there: every build's record
says whether the cache answered it, so the hits and misses are those of the build
history (``PF_DATABASE_URL``), read only when that database exists (a report never
creates one). The compiler caches are ccache's and sccache's own figures for the caches
task runs use (:mod:`pf.tasks.compilercache`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pf.config import Settings
from pf.engine.cache import Usage, usage
from pf.store import Database, default_url
from pf.store.history import Store
from pf.tasks.compilercache import Stats, stats


@dataclass(frozen=True)
class Report:
    """The compile cache's folder, bound, usage and recorded hits; the compiler caches."""

    directory: str
    max_bytes: int
    usage: Usage
    hits: int | None  # None: no build history to count them from
    misses: int | None
    compilers: list[Stats]

    def to_dict(self) -> dict[str, Any]:
        return {
            "compileCache": {
                "directory": self.directory,
                "entries": self.usage.entries,
                "blobs": self.usage.blobs,
                "bytes": self.usage.bytes,
                "maxBytes": self.max_bytes,
                "hits": self.hits,
                "misses": self.misses,
            },
            "compilerCaches": [found.to_dict() for found in self.compilers],
        }


def _history(settings: Settings) -> tuple[int | None, int | None]:
    url = default_url(settings)
    file = Database(url).file
    if file is not None and not file.exists():
        return None, None
    store = Store(url)
    store.open()
    try:
        return store.cache_counts()
    finally:
        store.close()


def report(settings: Settings, env: Mapping[str, str]) -> Report:
    """Measure the caches for ``settings``; ``env`` is the environment tasks start from."""
    root = os.path.abspath(settings.cache_dir)
    hits, misses = _history(settings)
    return Report(
        directory=root,
        max_bytes=settings.cache_max_bytes,
        usage=usage(settings.cache_dir),
        hits=hits,
        misses=misses,
        compilers=stats(settings, env),
    )
