"""Free disk space where pf writes, and the error a build meets when there is none.

``DiskFull`` is what a build fails with when one of pf's own writes (scratch files, the
content-addressed store, the action cache) hits ENOSPC or a quota: the user reads "no
space left on device", not "internal error". ``FreeSpace`` tells readiness whether the
cache directory and the database's directory still have PF_MIN_FREE_DISK free; it calls
statvfs at most once a second, so /api/ready stays cheap under polling and recovers
by itself once space comes back; each measure is also the ``pf_disk_free_bytes`` gauge
(engine.vitals). Imports config, errors and engine.vitals only.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from pathlib import Path

from pf.config import MiB
from pf.engine.vitals import DISK_FREE, DISK_MINIMUM
from pf.errors import PfError

_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
CHECK_INTERVAL = 1.0  # seconds a statvfs result is reused for


class DiskFull(PfError):
    """One of pf's own writes found no space left (HTTP 507 when answered directly)."""

    code = "disk-full"
    http_status = 507

    def __init__(self, what: str) -> None:
        super().__init__(
            f"no space left on device: pf could not write {what}",
            hint="the server is short of disk space; retry later (GET /api/ready says "
            "when it has space again)",
        )


def is_disk_full(error: BaseException) -> bool:
    """Whether ``error`` is a write that failed for want of space (ENOSPC, quota)."""
    return isinstance(error, OSError) and error.errno in _FULL


def _mib(size: int) -> str:
    """A size as PF_MIN_FREE_DISK accepts it: ``256M`` when whole mebibytes, else bytes."""
    return f"{size // MiB}M" if size % MiB == 0 else str(size)


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a cache directory not made yet)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


class FreeSpace:
    """Whether each of ``paths`` has ``minimum`` bytes free, re-measured at most every
    ``interval`` seconds::

        space = FreeSpace([cache_dir, db_dir], settings.min_free_disk)
        reason = space.shortage()  # None, or "only 3.0 MiB free on ...; pf needs ..."
    """

    def __init__(
        self, paths: Sequence[Path], minimum: int, interval: float = CHECK_INTERVAL
    ) -> None:
        self.paths = list(dict.fromkeys(paths))
        self.minimum = minimum
        self.interval = interval
        self._checked = -interval
        self._reason: str | None = None
        DISK_MINIMUM.set(minimum)

    def shortage(self) -> str | None:
        """Why pf is short of space (the first path below the minimum), or None."""
        now = time.monotonic()
        if now - self._checked >= self.interval:
            self._reason = self._measure()
            self._checked = now
        return self._reason

    def _measure(self) -> str | None:
        # Every path is measured, not only up to the first short one: each is a gauge.
        reasons = []
        for path in self.paths:
            where = _existing(path)
            try:
                info = os.statvfs(where)
            except OSError as error:
                reasons.append(f"cannot measure free space on {where}: {error.strerror or error}")
                continue
            free = info.f_bavail * info.f_frsize
            DISK_FREE.labels(str(where)).set(free)
            if free < self.minimum:
                reasons.append(
                    f"only {free / MiB:.1f} MiB free on {where}; "
                    f"pf needs PF_MIN_FREE_DISK={_mib(self.minimum)}"
                )
        return reasons[0] if reasons else None
