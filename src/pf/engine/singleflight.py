"""Single-flight: identical actions running at once execute once.

Strategy: whoever wants to run an action first takes an exclusive ``flock`` on a lock
file chosen by the action key, then looks in the cache again. The first holder misses
and runs the compiler; everyone who queued behind it finds the entry it stored and
returns a hit. ``flock`` locks belong to an open file description, so the same lock
coordinates threads of one process (each opens the file itself) and separate ``pf``
processes sharing a cache directory. Keys map onto a fixed set of 4096 lock files, so
the lock directory stays bounded; two different keys sharing a stripe only wait for
each other, they never share a result.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def flight(lock_dir: Path, key: str) -> Iterator[None]:
    """Hold the single-flight lock for ``key`` for the duration of the block."""
    lock_dir.mkdir(parents=True, exist_ok=True)
    with (lock_dir / f"{key[:3]}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
