"""Gauges that are read, not counted: a process's memory, and the state an alert watches
(the queue against its cap, free disk against PF_MIN_FREE_DISK, pf worker processes alive).
pf worker's own heartbeat gauge is engine.farm's, so that only workers export it.

Counters and histograms are defined beside what they count (engine.runner,
engine.scheduler, server.middleware, server.ws). These are sampled instead: the memory
of each process every few seconds (``keep_memory``), the rest by
BuildService.sample when metrics are read, so a scrape sees them as of that moment.

With several API processes (prometheus_client's multiprocess mode) the state gauges are
the same value whichever process read it, so the most recent one is kept
(``livemostrecent``); memory is per process, so each keeps its own with a ``pid`` label.
Imports nothing from pf.
"""

from __future__ import annotations

import asyncio
import os

from prometheus_client import Gauge

MEMORY_INTERVAL = 5.0  # seconds between samples of a process's resident memory

PROCESS_MEMORY = Gauge(
    "pf_process_resident_memory_bytes",
    "Resident memory of a pf process (pf serve's API processes, pf worker)",
    multiprocess_mode="liveall",
)
QUEUE_CAPACITY = Gauge(
    "pf_queue_capacity",
    "Builds the queue holds before it refuses more (PF_MAX_QUEUE)",
    multiprocess_mode="livemostrecent",
)
DISK_FREE = Gauge(
    "pf_disk_free_bytes",
    "Bytes free to pf where it writes (the cache folder, the SQLite database's folder)",
    ["path"],
    multiprocess_mode="livemostrecent",
)
DISK_MINIMUM = Gauge(
    "pf_disk_min_free_bytes",
    "Free bytes below which pf says it is not ready (PF_MIN_FREE_DISK)",
    multiprocess_mode="livemostrecent",
)
# Labelled so that it has no series outside shared mode, where there are no workers to
# count and a 0 would read as "all workers are down".
WORKERS = Gauge(
    "pf_workers",
    "pf worker processes whose heartbeat is recent, by job queue (shared mode)",
    ["queue"],
    multiprocess_mode="livemostrecent",
)


def resident_bytes() -> int:
    """This process's resident memory, 0 where /proc cannot say."""
    try:
        with open("/proc/self/statm") as handle:
            resident = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return resident * os.sysconf("SC_PAGE_SIZE")


def sample_memory() -> None:
    PROCESS_MEMORY.set(resident_bytes())


async def keep_memory(interval: float = MEMORY_INTERVAL) -> None:
    """Sample this process's memory every ``interval`` seconds until cancelled."""
    while True:
        sample_memory()
        await asyncio.sleep(interval)
