"""The action cache: action key -> manifest of outputs and captured logs, bounded in bytes.

Layout under the cache directory: ``ac/<kk>/<key>.json`` manifests, ``cas/`` blobs
(store.BlobStore), ``tmp/`` scratch directories, ``locks/`` single-flight and evict locks.
A manifest is written only after all its blobs are in place, and by atomic rename, so a
reader sees a whole entry or none.
A lookup verifies every blob's size and digest; an entry with a damaged or missing
blob is dropped and reported as a miss, so it is rebuilt and never served.

Recency is the manifest's mtime, refreshed on each hit. When the store grows past
``max_bytes``, the least recently used entries are removed, and their blobs with them
unless another entry still refers to them. Failed compiles are never stored.

Measuring the store means a stat of every blob: 25-50 ms for 3,000 blobs, too much to
pay on every compile that misses. So the evict lock file keeps a running total: each
store adds its bytes to it under that lock, and only when the total passes the bound (or
the last full measurement is ten minutes old, which corrects for other writers such as
a damaged blob removed at lookup) is the store measured again, and evicted. A blob
stored twice is counted twice, which only brings the next measurement forward.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pf.errors import CacheError
from pf.store import BlobStore

# How old the last full measurement of the store may get before stores measure again.
_MEASURE_INTERVAL = 600.0


@dataclass(frozen=True)
class Artifact:
    """One output of a build, stored in the CAS."""

    name: str
    kind: str
    digest: str
    size: int
    path: Path = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.name, "kind": self.kind, "size": self.size, "digest": self.digest}


@dataclass(frozen=True)
class Entry:
    """A manifest as read back from the cache, its blobs verified."""

    key: str
    artifacts: tuple[Artifact, ...]
    log: tuple[tuple[str, str], ...]
    diagnostics: tuple[dict[str, Any], ...]
    note: str | None
    duration: float


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    evicted: int = 0


class ActionCache:
    """Maps action keys to verified outputs; evicts least recently used past ``max_bytes``."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.blobs = BlobStore(root / "cas")
        self.stats = CacheStats()
        self._stats_lock = threading.Lock()
        try:
            for sub in ("ac", "cas", "tmp", "locks"):
                (root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot use cache directory {root}: {exc.strerror or exc}",
                hint="set PF_CACHE_DIR to a writable directory",
            ) from exc

    def _manifest(self, key: str) -> Path:
        return self.root / "ac" / key[:2] / f"{key}.json"

    def _count(self, name: str) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def lookup(self, key: str) -> Entry | None:
        """The verified entry for ``key``, or None on a miss (or a damaged entry, now removed)."""
        manifest = self._manifest(key)
        try:
            data = json.loads(manifest.read_bytes())
        except FileNotFoundError:
            self._count("misses")
            return None
        except ValueError:
            manifest.unlink(missing_ok=True)
            self._count("corrupt")
            self._count("misses")
            return None
        artifacts = []
        for item in data["outputs"]:
            path = self.blobs.verified(item["digest"], item["size"])
            if path is None:
                manifest.unlink(missing_ok=True)
                self._count("corrupt")
                self._count("misses")
                return None
            artifacts.append(
                Artifact(item["name"], item["kind"], item["digest"], item["size"], path)
            )
        with contextlib.suppress(FileNotFoundError):
            os.utime(manifest)
        self._count("hits")
        return Entry(
            key=key,
            artifacts=tuple(artifacts),
            log=tuple((stream, text) for stream, text in data["log"]),
            diagnostics=tuple(data["diagnostics"]),
            note=data.get("note"),
            duration=float(data["duration"]),
        )

    def store(
        self,
        key: str,
        outputs: Sequence[tuple[str, str, Path]],
        log: Sequence[tuple[str, str]],
        diagnostics: Sequence[dict[str, Any]],
        note: str | None,
        duration: float,
    ) -> Entry:
        """Store outputs ``(name, kind, file)`` and the logs under ``key``; returns the entry."""
        artifacts = []
        added = 0
        for name, kind, file in outputs:
            digest, size = self.blobs.put_file(file)
            added += size
            artifacts.append(Artifact(name, kind, digest, size, self.blobs.path(digest)))
        document = {
            "key": key,
            "outputs": [
                {"name": a.name, "kind": a.kind, "digest": a.digest, "size": a.size}
                for a in artifacts
            ],
            "log": [list(pair) for pair in log],
            "diagnostics": list(diagnostics),
            "note": note,
            "duration": duration,
        }
        manifest = self._manifest(key)
        manifest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=manifest.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
        os.replace(tmp, manifest)
        self._account(added)
        return Entry(key, tuple(artifacts), tuple(log), tuple(diagnostics), note, duration)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[int]:
        """Hold the evict lock; yields the lock file's descriptor, which holds the total."""
        fd = os.open(self.root / "locks" / "evict.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _account(self, added: int) -> None:
        """Add ``added`` bytes to the running total; measure and evict past the bound."""
        with self._exclusive() as fd:
            usage, measured = _read_usage(fd)
            if usage is None or time.time() - measured > _MEASURE_INTERVAL:
                usage, measured = self._measure(), time.time()
            else:
                usage += added
            if usage > self.max_bytes:
                usage, measured = self._measure(), time.time()
                usage -= self._evict(usage)
            _write_usage(fd, usage, measured)

    def _measure(self) -> int:
        total = 0
        for shard in os.scandir(self.root / "cas"):
            if shard.is_dir():
                total += sum(e.stat().st_size for e in os.scandir(shard.path) if e.is_file())
        return total

    def evict(self) -> int:
        """Drop least recently used entries until blobs fit ``max_bytes``; returns bytes freed."""
        with self._exclusive() as fd:
            usage = self._measure()
            freed = self._evict(usage)
            _write_usage(fd, usage - freed, time.time())
        return freed

    def _evict(self, usage: int) -> int:
        """Remove least recently used entries (under the evict lock) from ``usage`` bytes."""
        if usage <= self.max_bytes:
            return 0
        entries: list[tuple[float, Path, list[str]]] = []
        refs: dict[str, int] = {}
        for shard in (self.root / "ac").iterdir():
            for manifest in shard.glob("*.json"):
                try:
                    digests = [o["digest"] for o in json.loads(manifest.read_bytes())["outputs"]]
                    mtime = manifest.stat().st_mtime
                except (OSError, ValueError, KeyError):
                    manifest.unlink(missing_ok=True)
                    continue
                entries.append((mtime, manifest, digests))
                for digest in digests:
                    refs[digest] = refs.get(digest, 0) + 1
        entries.sort()
        freed = 0
        for _mtime, manifest, digests in entries:
            if usage - freed <= self.max_bytes:
                break
            manifest.unlink(missing_ok=True)
            self._count("evicted")
            for digest in digests:
                refs[digest] -= 1
                if refs[digest] == 0:
                    freed += self.blobs.discard(digest)
        return freed


# The running total lives in the evict lock file, read and written only under its lock,
# so one open serves both.
def _read_usage(fd: int) -> tuple[int | None, float]:
    try:
        data = json.loads(os.pread(fd, 4096, 0))
        return int(data["bytes"]), float(data["measured"])
    except (ValueError, KeyError, TypeError):
        return None, 0.0  # empty (never written), or a write cut short: measure again


def _write_usage(fd: int, usage: int, measured: float) -> None:
    data = json.dumps({"bytes": usage, "measured": measured}).encode()
    os.pwrite(fd, data, 0)
    os.ftruncate(fd, len(data))
