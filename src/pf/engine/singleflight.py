"""Single-flight: identical actions running at once execute once.

Strategy: whoever wants to run an action first takes an exclusive lock chosen by the
action key, then looks in the cache again. The first holder misses and runs the
compiler; everyone who queued behind it finds the entry it stored and returns a hit.

The locks are byte-range locks on one file, ``locks/flight.lock``: the key picks a byte
(one of 2**24, so two keys share a lock about once in 16 million; they then only wait
for each other, they never share a result). They are open-file-description locks
(``F_OFD_SETLKW``), which belong to the descriptor, not to the process: each holder
opens the file itself, so the same lock coordinates threads of one process and separate
``pf`` processes sharing a cache directory. One file rather than a file per key: on a
disk that pays for every new inode, a fresh cache would otherwise create thousands of
lock files on its first compiles.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pf.engine.cache import not_writable

LOCK_FILE = "flight.lock"
_KEY_DIGITS = 6  # 2**24 lock bytes


def _flock(kind: int, offset: int) -> bytes:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0, as OFD locks require).
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, offset, 1, 0)


@contextmanager
def flight(lock_dir: Path, key: str) -> Iterator[None]:
    """Hold the single-flight lock for ``key`` for the duration of the block.

    Raises CacheError when the lock file cannot be opened for writing: the cache
    directory is not writable by this user, and a miss could not be stored anyway.
    """
    path = lock_dir / LOCK_FILE
    try:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except FileNotFoundError:
            # The cache makes its lock directory; this is one removed since.
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise not_writable(lock_dir.parent, exc) from exc
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, _flock(fcntl.F_WRLCK, int(key[:_KEY_DIGITS], 16)))
        yield
    finally:
        os.close(fd)  # releases the lock
