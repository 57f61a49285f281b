"""The action cache: action key -> manifest of outputs and captured logs, bounded in bytes.

Layout under the cache directory: ``manifests.db`` (engine.manifests: one SQLite file
of the manifests and of the blobs of at most 16 KiB, so storing a small compile's entry
creates no file at all), ``cas/`` larger blobs (store.BlobStore), ``tmp/`` scratch
directories, ``locks/`` single-flight and evict locks.
Scratch directories (unconfined compiles only; the sandbox brings its own) go to
PF_SCRATCH_DIR instead when set, and by default to ``/dev/shm/pf-<uid>`` where
``/dev/shm`` is a tmpfs with 1 GiB free: they are thrown away after each compile, and
on a journalled disk making their directories and files costs more than a small
compile's own work. The store itself stays on disk.
A manifest is written only after all its blob files are in place, in one transaction
with the blobs kept in the database, so a reader sees a whole entry or none. A blob
kept there that something needs as a file (pf serve sends files) is written to ``cas/``
when first asked for (``fetch``). Files are created with the modes the user's umask
allows, so a cache can be shared by a group.
A lookup validates the manifest's shape (an output name is a plain file name, so it
cannot point an export outside its directory), verifies every blob's size and digest,
and re-hashes every file outside the request the compile read (see ``deps``). A
malformed entry, or one with a damaged or missing blob, is dropped and reported as a
miss, so it is rebuilt and never served; one whose dependencies changed is a miss
that the rebuild replaces.

Recency is a blob file's mtime and a manifest's or a kept blob's ``used`` time,
refreshed on each hit for the manifest and its blobs alike. When the store (manifests
and blobs) grows past ``max_bytes``, the least recently used are removed, manifests and
blobs alike and without reading any manifest: a manifest whose blob went first is a
miss at its next lookup, and a blob no manifest still names ages out on its own. What
this process pinned (the entry just stored, prebuilt inputs a running build still
copies) are never removed, so a result larger than the whole bound is still delivered,
and goes at the next eviction. Failed compiles are never stored.

In shared mode (``shared``, store.shared) this directory is the first tier of a cache
every pf process shares: a local miss asks the shared tier, and a manifest found there
is brought in (its blobs verified against their digests, then the manifest) and served
as a local hit; every entry stored here is also put there, so a worker never keeps the
only copy of what it built. ``flight(key)`` is the shared tier's cross-process lock.

Measuring the store means a stat of every blob: 25-50 ms for 3,000 blobs, too much to
pay on every compile that misses. So the evict lock file keeps a running total: stores
add their bytes to it under that lock, and only when the total passes the bound (or
the last full measurement is ten minutes old, which corrects for other writers such as
a damaged blob removed at lookup) is the store measured again, and evicted. A blob
stored twice is counted twice, which only brings the next measurement forward. A
process adds its stores in batches rather than one lock round trip each: its first
store reads the total, later ones add to a count of its own, which goes into the file
once it reaches 1% of the bound (at most 4 MiB) or is a second old, or at once when the
total as this process last saw it plus its count passes the bound. So the bound is
enforced as before by a single process, and other processes' stores are seen at most a
batch late: the cache may outgrow its bound by one batch per live process until then. Each
measurement also removes scratch directories and temporary files that builds killed
mid-way (``kill -9``) left behind: a live build holds a lock on its scratch directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pf.config import GiB, Settings
from pf.engine.diskspace import DiskFull, is_disk_full
from pf.engine.manifests import INLINE_MAX, Manifests, measure
from pf.errors import CacheError, PfError
from pf.store import BlobStore, digest_bytes, digest_file
from pf.store.blobs import TMP_PREFIX

if TYPE_CHECKING:
    from pf.store.shared import SharedCache

# How old the last full measurement of the store may get before stores measure again.
_MEASURE_INTERVAL = 600.0
# How many bytes, and how long, a process's stores may wait before they go into the
# running total (see the module docstring).
_BATCH_SHARE = 100
_BATCH_BYTES = 4 * 1024 * 1024
_BATCH_SECONDS = 1.0
# A scratch dir or temporary file this old, whose build holds no lock on it, is left over
# from a killed build. The age covers the moment between a scratch dir's creation and
# its lock; nothing else depends on it.
_STALE_AGE = 600.0
_DIGEST = re.compile(r"[0-9a-f]{64}")
_STREAMS = frozenset({"stdout", "stderr"})
_DIAGNOSTIC_FIELDS = {"file": str, "line": int, "col": int, "severity": str, "message": str}
# Recency finer than this does not change which entries an eviction picks in practice.
_TOUCH_INTERVAL = 60.0
# Where an older pf kept manifests, one file each; moved into the database at first use.
_LEGACY = "ac"
SCRATCH_PREFIX = "build-"
# Where scratch directories go by default when it is a tmpfs with this much free.
_TMPFS = Path("/dev/shm")
_TMPFS_MIN_FREE = 1 * GiB


def not_writable(root: Path, exc: OSError) -> PfError:
    """The error for a cache directory this user cannot write to (or that is full)."""
    if is_disk_full(exc):
        return DiskFull("to its cache directory (PF_CACHE_DIR)")
    return CacheError(
        f"cannot write to the cache directory {root}: {exc.strerror or exc}",
        hint="make it writable by this user, or set PF_CACHE_DIR to a directory you can write",
    )


@dataclass(frozen=True)
class Artifact:
    """One output of a build, stored in the CAS.

    ``path`` is where its blob file is, or would be: a blob of at most ``INLINE_MAX``
    bytes is kept in the cache's database instead, and comes with the artifact a compile
    or a lookup returns as ``data``. ``ActionCache.fetch`` gives any blob as a file.
    """

    name: str
    kind: str
    digest: str
    size: int
    path: Path = field(compare=False)
    data: bytes | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.name, "kind": self.kind, "size": self.size, "digest": self.digest}

    def read_bytes(self) -> bytes:
        return self.data if self.data is not None else self.path.read_bytes()

    def copy_to(self, target: Path) -> None:
        if self.data is not None:
            target.write_bytes(self.data)
        else:
            shutil.copyfile(self.path, target)

    def without_data(self) -> Artifact:
        """The same artifact without its bytes, to keep in memory for long."""
        return self if self.data is None else replace(self, data=None)


@dataclass(frozen=True)
class _Kept:
    """A blob kept in the database, as eviction and pins name it."""

    digest: str


def _held(artifacts: Iterable[Artifact]) -> list[Path | _Kept]:
    """What keeps ``artifacts``' blobs from eviction: their files, or their rows."""
    return [a.path if a.data is None else _Kept(a.digest) for a in artifacts]


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

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        shared: SharedCache | None = None,
        scratch_dir: Path | None = None,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.shared = shared
        # Where scratch() makes its directories: ``tmp`` here unless told otherwise.
        self.scratch_dir = scratch_dir if scratch_dir is not None else root / "tmp"
        self.blobs = BlobStore(root / "cas")
        self.stats = CacheStats()
        self._stats_lock = threading.Lock()
        # Blob paths, kept blobs and manifest keys this object keeps from eviction.
        self._pins: Counter[Path | str | _Kept] = Counter()
        # Bytes stored here and not yet in the running total; the total as last read or
        # written (None: not yet), and when (monotonic).
        self._unaccounted = 0
        self._total: int | None = None
        self._accounted_at = 0.0
        self._batch = min(_BATCH_BYTES, max_bytes // _BATCH_SHARE)
        try:
            for sub in ("cas", "tmp", "locks"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            self.scratch_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot use cache directory {root}: {exc.strerror or exc}",
                hint="set PF_CACHE_DIR to a writable directory",
            ) from exc
        self.manifests = Manifests(root)
        if (root / _LEGACY).is_dir():
            self._import_legacy()

    def _import_legacy(self) -> None:
        """Move the manifests an older pf kept as files (``ac/<kk>/<key>.json``) into the
        database, so its entries stay hits; a cache this user may only read keeps them."""
        legacy = self.root / _LEGACY
        if not os.access(legacy, os.W_OK):
            return
        for path in legacy.glob("*/*.json"):
            with contextlib.suppress(OSError):
                if _DIGEST.fullmatch(path.stem):
                    self.manifests.put(path.stem, path.read_bytes())
                path.unlink()
        shutil.rmtree(legacy, ignore_errors=True)

    @classmethod
    def for_settings(cls, settings: Settings, shared: SharedCache | None = None) -> ActionCache:
        """The cache PF_CACHE_DIR names, bounded by PF_CACHE_MAX_BYTES, its scratch
        directories where PF_SCRATCH_DIR says (by default a tmpfs, if any)."""
        scratch = settings.scratch_dir
        if scratch is None:
            scratch = _tmpfs_scratch()
        return cls(settings.cache_dir, settings.cache_max_bytes, shared, scratch)

    def _count(self, name: str) -> None:
        with self._stats_lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    def _drop(self, key: str) -> None:
        self._count("corrupt")
        self._count("misses")
        # In a cache this user may only read, the entry stays; it is still never served.
        with contextlib.suppress(sqlite3.OperationalError):
            self.manifests.drop([key])

    def lookup(self, key: str) -> Entry | None:
        """The verified entry for ``key``, or None on a miss (or a damaged entry, now removed)."""
        found = self.manifests.get(key)
        if found is None and self.shared is not None and self._pull(key):
            found = self.manifests.get(key)
        if found is None:
            self._count("misses")
            return None
        raw, used = found
        try:
            data = _valid(json.loads(raw), key)
        except ValueError:
            data = None
        if data is None:
            self._drop(key)
            return None
        for path, digest in data["deps"]:
            try:
                changed = digest_file(Path(path)) != digest
            except OSError:
                changed = True
            if changed:
                self._count("misses")
                return None
        artifacts = []
        for item in data["outputs"]:
            digest, size = item["digest"], item["size"]
            blob = self._verified(digest, size)
            if blob is None:
                self._drop(key)
                return None
            kept = blob if isinstance(blob, bytes) else None
            path = self.blobs.path(digest)
            artifacts.append(Artifact(item["name"], item["kind"], digest, size, path, kept))
        # An entry and its blobs were touched together: if the entry was used a moment
        # ago, so were they, and a hit spares a write and an inode's (about 8 us).
        if time.time() - used > _TOUCH_INTERVAL:
            # Best effort, as for the blobs: a cache this user may only read still serves.
            with contextlib.suppress(sqlite3.OperationalError):
                self.manifests.touch(key, [a.digest for a in artifacts if a.data is not None])
            _touch(*(a.path for a in artifacts if a.data is None))
        self._count("hits")
        return Entry(
            key=key,
            artifacts=tuple(artifacts),
            log=tuple((stream, text) for stream, text in data["log"]),
            diagnostics=tuple(data["diagnostics"]),
            note=data["note"],
            duration=float(data["duration"]),
        )

    def store(
        self,
        key: str,
        outputs: Sequence[tuple[str, str, Path | bytes]],
        log: Sequence[tuple[str, str]],
        diagnostics: Sequence[dict[str, Any]],
        note: str | None,
        duration: float,
        deps: Sequence[tuple[str, str]] = (),
    ) -> Entry:
        """Store outputs ``(name, kind, file or its bytes)`` and the logs under ``key``;
        returns the entry.

        ``deps`` are ``(absolute path, sha256)`` of files outside the request that the
        compile read: a later lookup is a hit only while each still has that digest.
        The eviction this store may start never removes what it stored, so the caller
        can export it even when it is larger than the whole bound.
        """
        try:
            artifacts = []
            kept = []
            added = 0
            for name, kind, output in outputs:
                if isinstance(output, Path) and output.stat().st_size <= INLINE_MAX:
                    output = output.read_bytes()
                data = None
                if isinstance(output, Path):
                    digest, size = self.blobs.put_file(output)
                elif len(output) <= INLINE_MAX:
                    data, digest, size = output, digest_bytes(output), len(output)
                    kept.append((digest, data))
                else:
                    digest, size = self.blobs.put_data(output)
                added += size
                path = self.blobs.path(digest)
                artifacts.append(Artifact(name, kind, digest, size, path, data))
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
                "deps": [list(dep) for dep in deps],
            }
            encoded = json.dumps(document).encode()
            added += len(encoded)
            self._put_manifest(key, encoded, kept)
            # A blob file already stored keeps its old mtime: it is used again now.
            _touch(*(a.path for a in artifacts if a.data is None))
        except OSError as exc:
            # The blob being written was a temporary file, removed on the way out: what
            # is in the cache is whole, the entry is simply not stored.
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or is_disk_full(exc):
                raise not_writable(self.root, exc) from exc
            raise
        with self.pinned(key, *_held(artifacts)):
            if self.shared is not None:
                blobs = [(a.digest, a.path if a.data is None else a.data) for a in artifacts]
                self.shared.put(key, encoded, blobs)
            self._account(added)
        return Entry(key, tuple(artifacts), tuple(log), tuple(diagnostics), note, duration)

    def _verified(self, digest: str, size: int) -> bytes | Path | None:
        """A blob's bytes if the database keeps it whole, else its file if whole (a small
        one an older pf stored, or one written since); else None."""
        kept = self._kept(digest, size)
        return kept if kept is not None else self.blobs.verified(digest, size)

    def _kept(self, digest: str, size: int) -> bytes | None:
        """A blob's bytes if the database keeps it whole; a damaged copy is removed."""
        if size > INLINE_MAX:
            return None
        data = self.manifests.blob(digest)
        if data is None or (len(data) == size and digest_bytes(data) == digest):
            return data
        with contextlib.suppress(sqlite3.OperationalError):
            self.manifests.drop((), [digest])
        return None

    def _put_manifest(
        self, key: str, encoded: bytes, kept: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        try:
            self.manifests.put(key, encoded, kept)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                raise DiskFull("to its cache directory (PF_CACHE_DIR)") from exc
            # Read-only, or locked past the busy timeout: as an OSError would say.
            raise CacheError(
                f"cannot write to the cache directory {self.root}: {exc}",
                hint="make it writable by this user, or set PF_CACHE_DIR to a directory "
                "you can write",
            ) from exc

    # The shared tier ----------------------------------------------------------------

    def flight(self, key: str) -> contextlib.AbstractContextManager[None]:
        """The cross-process single-flight lock of ``key`` (none without a shared tier)."""
        if self.shared is None:
            return contextlib.nullcontext()
        return self.shared.flight(key)

    def _pull(self, key: str) -> bool:
        """Bring the shared tier's entry for ``key`` into this directory; False if none
        (or one with a missing or damaged blob, which is dropped there)."""
        assert self.shared is not None
        raw = self.shared.manifest(key)
        if raw is None:
            return False
        try:
            data = _valid(json.loads(raw), key)
        except ValueError:
            data = None
        if data is None:
            self.shared.drop(key)
            return False
        added = len(raw)
        held: list[Path | _Kept] = []
        kept = []
        for item in data["outputs"]:
            digest, size = item["digest"], item["size"]
            # A small blob is kept as a row here, a larger one brought in as a file.
            blob: bytes | Path | None
            if size > INLINE_MAX:
                blob = self.fetch(digest, size)
            else:
                blob = self._verified(digest, size)
                if blob is None:
                    blob = self._shared_blob(digest, size)
            if blob is None:
                self.shared.drop(key)
                return False
            if isinstance(blob, bytes):
                kept.append((digest, blob))
                held.append(_Kept(digest))
            else:
                held.append(blob)
            added += size
        self._put_manifest(key, raw, kept)
        with self.pinned(key, *held):
            self._account(added)
        return True

    def fetch(self, digest: str, size: int) -> Path | None:
        """The path of blob ``digest`` here, written from the database where it is kept
        there, or brought from the shared tier; None if none has it whole."""
        local = self.blobs.verified(digest, size)
        if local is not None:
            return local
        data = self._kept(digest, size)
        if data is None:
            data = self._shared_blob(digest, size)
        if data is None:
            return None
        try:
            return self.blobs.put_bytes(digest, data)
        except OSError as exc:
            raise not_writable(self.root, exc) from exc

    def _shared_blob(self, digest: str, size: int) -> bytes | None:
        """Blob ``digest`` from the shared tier, if it has it whole (none without one)."""
        if self.shared is None:
            return None
        data = self.shared.blob(digest)
        if data is None or len(data) != size or digest_bytes(data) != digest:
            return None
        return data

    @contextlib.contextmanager
    def pinned(self, *paths: Path | str | _Kept) -> Iterator[None]:
        """Keep ``paths`` (blob files), kept blobs and keys (manifests) from eviction by
        this cache object for the duration of the block."""
        with self._stats_lock:
            self._pins.update(paths)
        try:
            yield
        finally:
            with self._stats_lock:
                self._pins.subtract(paths)
                for path in paths:
                    if self._pins[path] <= 0:
                        del self._pins[path]

    def pin_entry(self, entry: Entry) -> contextlib.AbstractContextManager[None]:
        """Keep an entry's blobs and manifest from eviction by this cache object meanwhile."""
        return self.pinned(entry.key, *_held(entry.artifacts))

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A new scratch directory under ``tmp/``, locked while the block runs.

        The caller removes it; one that a killed build leaves is removed by a later
        measurement once stale, as its lock died with the build.
        """
        try:
            path = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX, dir=self.scratch_dir))
        except OSError as exc:
            raise not_writable(self.root, exc) from exc
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield path
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[int]:
        """Hold the evict lock; yields the lock file's descriptor, which holds the total."""
        try:
            fd = os.open(self.root / "locks" / "evict.lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise not_writable(self.root, exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # releases the lock

    def _account(self, added: int) -> None:
        """Add ``added`` bytes to the running total, in batches (see the module
        docstring); measure and evict past the bound."""
        now = time.monotonic()
        with self._stats_lock:
            self._unaccounted += added
            if (
                self._total is not None
                and self._total + self._unaccounted <= self.max_bytes
                and self._unaccounted < self._batch
                and now - self._accounted_at < _BATCH_SECONDS
            ):
                return
            added, self._unaccounted = self._unaccounted, 0
        try:
            total = self._add_to_total(added)
        except BaseException:
            with self._stats_lock:
                self._unaccounted += added
            raise
        with self._stats_lock:
            self._total = total
            self._accounted_at = now

    def _add_to_total(self, added: int) -> int:
        """Add ``added`` bytes to the file's running total, measuring and evicting when
        it is unknown, stale or past the bound; returns the new total."""
        with self._exclusive() as fd:
            known, measured = _read_usage(fd)
            fresh = time.time() - measured <= _MEASURE_INTERVAL
            if known is not None and fresh and known + added <= self.max_bytes:
                _write_usage(fd, known + added, measured)
                return known + added
            # Unknown, stale or past the bound: count once (the running total drifts),
            # and evict from that count.
            files = self._scan()
            usage = sum(size for _, size, _ in files)
            total = usage - self._evict(files, usage)
            _write_usage(fd, total, time.time())
            return total

    def _scan(self) -> list[tuple[float, int, Path | str | _Kept]]:
        """``(last used, size, blob path, kept blob or manifest key)`` of every blob and
        manifest; sweeps what killed builds left."""
        self._sweep_scratch()
        now = time.time()
        files: list[tuple[float, int, Path | str | _Kept]] = list(self.manifests.entries())
        files.extend((used, size, _Kept(digest)) for used, size, digest in self.manifests.blobs())
        for shard in os.scandir(self.root / "cas"):
            if not shard.is_dir():
                continue
            for entry in os.scandir(shard.path):
                try:
                    info = entry.stat()
                except FileNotFoundError:
                    continue  # removed meanwhile by a lookup or another process
                if entry.name.startswith(TMP_PREFIX):
                    # Being written now, or left by a writer that was killed.
                    if now - info.st_mtime > _STALE_AGE:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                    continue
                files.append((info.st_mtime, info.st_size, Path(entry.path)))
        return files

    def _sweep_scratch(self) -> None:
        """Remove stale scratch dirs that no live build holds a lock on."""
        for place in dict.fromkeys((self.root / "tmp", self.scratch_dir)):
            try:
                _sweep(place)
            except FileNotFoundError:
                continue  # a tmpfs emptied by a reboot

    def evict(self) -> int:
        """Drop least recently used files until the store fits ``max_bytes``; returns the bytes."""
        with self._exclusive() as fd:
            files = self._scan()
            usage = sum(size for _, size, _ in files)
            freed = self._evict(files, usage)
            _write_usage(fd, usage - freed, time.time())
        with self._stats_lock:
            self._total = usage - freed
        return freed

    def _evict(self, files: list[tuple[float, int, Path | str | _Kept]], usage: int) -> int:
        """Remove least recently used blobs and manifests (under the evict lock) from
        ``usage`` bytes."""
        if usage <= self.max_bytes:
            return 0
        with self._stats_lock:
            pinned = set(self._pins)
        files.sort(key=lambda item: item[0])
        freed = 0
        keys = []
        digests = []
        for _used, size, item in files:
            if usage - freed <= self.max_bytes:
                break
            if item in pinned:
                continue
            if isinstance(item, str):
                keys.append(item)
            elif isinstance(item, _Kept):
                digests.append(item.digest)
            else:
                try:
                    item.unlink()
                except FileNotFoundError:
                    continue
            freed += size
        if keys or digests:
            self.manifests.drop(keys, digests)
            with self._stats_lock:
                self.stats.evicted += len(keys)
        return freed


@dataclass(frozen=True)
class Usage:
    """What a cache directory holds: entries (manifests), blobs and their bytes together."""

    entries: int
    blobs: int
    bytes: int


def _sweep(directory: Path) -> None:
    """Remove the stale scratch dirs in ``directory`` that no live build holds a lock on."""
    now = time.time()
    for entry in os.scandir(directory):
        if not entry.name.startswith(SCRATCH_PREFIX):
            continue
        try:
            if now - entry.stat().st_mtime <= _STALE_AGE:
                continue
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live build
        else:
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)


@functools.cache
def _tmpfs_scratch() -> Path | None:
    """``/dev/shm/pf-<uid>`` if ``/dev/shm`` is a tmpfs with room and that directory is
    this user's alone; else None (scratch stays in the cache directory).

    ``/dev/shm`` is writable by everyone: a directory of that name that another user
    made first, or a link, is not used.
    """
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as mounts:
            if not any(line.split()[1:3] == [str(_TMPFS), "tmpfs"] for line in mounts):
                return None
        info = os.statvfs(_TMPFS)
        if info.f_bavail * info.f_frsize < _TMPFS_MIN_FREE:
            return None
        own = _TMPFS / f"pf-{os.getuid()}"
        with contextlib.suppress(FileExistsError):
            os.mkdir(own, 0o700)
        found = os.lstat(own)
    except OSError:
        return None
    if (
        not stat.S_ISDIR(found.st_mode)
        or found.st_uid != os.getuid()
        or found.st_mode & 0o077
        or not os.access(own, os.W_OK | os.X_OK)
    ):
        return None
    return own


def usage(root: Path) -> Usage:
    """Measure the cache at ``root`` without changing it (a missing one is empty)."""
    entries, blobs, total = measure(root)
    try:
        shards = list(os.scandir(root / "cas"))
    except FileNotFoundError:
        shards = []
    for shard in shards:
        if not shard.is_dir():
            continue
        for entry in os.scandir(shard.path):
            if entry.name.startswith(TMP_PREFIX):
                continue
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                continue  # removed meanwhile by a lookup or an eviction
            blobs += 1
    return Usage(entries=entries, blobs=blobs, bytes=total)


def _touch(*paths: Path) -> None:
    """Mark files used now, for eviction's recency.

    Best effort: in a cache this user may only read (or files another user created),
    a hit is still served, only its recency is not recorded.
    """
    for path in paths:
        with contextlib.suppress(OSError):
            os.utime(path)


def _plain_name(value: object) -> bool:
    return (
        isinstance(value, str)
        and value not in {"", ".", ".."}
        and "/" not in value
        and "\x00" not in value
    )


def _valid(data: object, key: str) -> dict[str, Any] | None:
    """``data`` if it is a well-formed manifest for ``key``, else None."""
    if not isinstance(data, dict) or data.get("key") != key:
        return None
    outputs, log, diagnostics, deps = (
        data.get("outputs"),
        data.get("log"),
        data.get("diagnostics"),
        data.get("deps"),
    )
    if not (
        isinstance(outputs, list)
        and isinstance(log, list)
        and isinstance(diagnostics, list)
        and isinstance(deps, list)
        and (data.get("note") is None or isinstance(data["note"], str))
        and type(data.get("duration")) in (int, float)
    ):
        return None
    for item in outputs:
        if not (
            isinstance(item, dict)
            and _plain_name(item.get("name"))
            and isinstance(item.get("kind"), str)
            and isinstance(item.get("digest"), str)
            and _DIGEST.fullmatch(item["digest"])
            and type(item.get("size")) is int
            and item["size"] >= 0
        ):
            return None
    for pair in log:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and pair[0] in _STREAMS
            and isinstance(pair[1], str)
        ):
            return None
    for diagnostic in diagnostics:
        if not (
            isinstance(diagnostic, dict)
            and diagnostic.keys() == _DIAGNOSTIC_FIELDS.keys()
            and all(type(diagnostic[k]) is t for k, t in _DIAGNOSTIC_FIELDS.items())
        ):
            return None
    for dep in deps:
        if not (
            isinstance(dep, list)
            and len(dep) == 2
            and isinstance(dep[0], str)
            and os.path.isabs(dep[0])
            and isinstance(dep[1], str)
            and _DIGEST.fullmatch(dep[1])
        ):
            return None
    return data


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
