"""The action cache: action key -> manifest of outputs and captured logs, bounded in bytes.

Layout under the cache directory: ``ac/<kk>/<key>.json`` manifests, ``cas/`` blobs
(store.BlobStore), ``tmp/`` scratch directories. A manifest is written only after all
its blobs are in place, and by atomic rename, so a reader sees a whole entry or none.
A lookup verifies every blob's size and digest; an entry with a damaged or missing
blob is dropped and reported as a miss, so it is rebuilt and never served.

Recency is the manifest's mtime, refreshed on each hit. When the store grows past
``max_bytes``, the least recently used entries are removed, and their blobs with them
unless another entry still refers to them. Failed compiles are never stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pf.errors import CacheError
from pf.store import BlobStore


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
        for name, kind, file in outputs:
            digest, size = self.blobs.put_file(file)
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
        self.evict()
        return Entry(key, tuple(artifacts), tuple(log), tuple(diagnostics), note, duration)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with (self.root / "locks" / "evict.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _usage(self) -> int:
        total = 0
        for shard in os.scandir(self.root / "cas"):
            if shard.is_dir():
                total += sum(e.stat().st_size for e in os.scandir(shard.path) if e.is_file())
        return total

    def evict(self) -> int:
        """Drop least recently used entries until blobs fit ``max_bytes``; returns bytes freed."""
        with self._exclusive():
            usage = self._usage()
            if usage <= self.max_bytes:
                return 0
            entries: list[tuple[float, Path, list[str]]] = []
            refs: dict[str, int] = {}
            for shard in (self.root / "ac").iterdir():
                for manifest in shard.glob("*.json"):
                    try:
                        digests = [
                            o["digest"] for o in json.loads(manifest.read_bytes())["outputs"]
                        ]
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
