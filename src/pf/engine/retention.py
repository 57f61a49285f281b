"""What pf keeps, and for how long: finished builds in memory, build history on disk.

Memory holds the PF_MAX_BUILDS most recently finished builds (running and queued ones
live elsewhere, so eviction never touches a build in progress); older ones are still
answered from the store. The store keeps finished builds for PF_HISTORY_DAYS and at
most PF_MAX_HISTORY of them; ``prune_history`` deletes the rest with their logs. Queued
and running builds are never pruned. Imports store and config only.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from pf.config import Settings
from pf.engine.jobs import Job
from pf.store.history import Store

PRUNE_INTERVAL = 300.0  # seconds between history prunes while serving
DAY = 86_400.0


class RecentBuilds:
    """The newest finished jobs, at most ``limit``, oldest evicted first. Thread-safe."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
            self._jobs.move_to_end(job.id)
            while len(self._jobs) > self.limit:
                self._jobs.popitem(last=False)
                self.evicted += 1

    def seed(self, jobs: list[Job]) -> None:
        """Fill from the store at start: ``jobs`` oldest first."""
        for job in jobs:
            self.add(job)
        self.evicted = 0

    def get(self, build_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(build_id)

    def newest_first(self) -> list[Job]:
        with self._lock:
            return list(reversed(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)


def prune_history(store: Store, settings: Settings, now: float | None = None) -> int:
    """Delete finished builds older than PF_HISTORY_DAYS or beyond PF_MAX_HISTORY."""
    moment = time.time() if now is None else now
    return store.prune(
        ended_before=moment - settings.history_days * DAY,
        keep=settings.max_history,
    )


def pruner(store: Store, settings: Settings) -> Callable[[], int]:
    """A no-argument prune, for the writer thread's periodic chores."""
    return lambda: prune_history(store, settings)
