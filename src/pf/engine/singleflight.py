"""Single-flight: identical actions running at once execute once.

Strategy: whoever wants to run an action first takes an exclusive ``flock`` on a lock
file chosen by the action key, then looks in the cache again. The first holder misses
and runs the compiler; everyone who queued behind it finds the entry it stored and
returns a hit. ``flock`` locks belong to an open file description, so the same lock
coordinates threads of one process (each opens the file itself) and separate ``pf``
processes sharing a cache directory. Keys map onto a fixed set of 4096 lock files, so
the lock directory stays bounded; two different keys sharing a stripe only wait for
each other, they never share a result. A lock file is opened read-only (``flock``
needs no more), so one that another user of a shared cache created serves as well.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pf.engine.cache import not_writable


@contextmanager
def flight(lock_dir: Path, key: str) -> Iterator[None]:
    """Hold the single-flight lock for ``key`` for the duration of the block.

    Raises CacheError when the lock cannot be created: the cache directory is not
    writable by this user, and a miss could not be stored anyway.
    """
    path = lock_dir / f"{key[:3]}.lock"
    try:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
        except FileNotFoundError:
            # The cache makes its lock directory; this is one removed since.
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError as exc:
        raise not_writable(lock_dir.parent, exc) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
