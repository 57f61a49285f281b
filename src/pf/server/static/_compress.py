"""Compressed variants: made once per content digest, kept in a bounded sidecar directory.

Files are named ``<digest>.br`` / ``<digest>.gz`` (``<digest>.none`` marks content that
does not compress), so a restart, another worker process or another path with the same
bytes reuses them: nothing is ever compressed per request. One daemon thread
produces them in the background, because brotli at quality 11 runs at about 0.5 MB/s;
until a variant exists the file is served as it is. The directory is capped in bytes
and files, oldest first out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
import os
import queue
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import brotli

log = logging.getLogger("pf.server.static")

MiB = 1024 * 1024
MIN_SIZE = 512  # below this the headers cost more than compression saves
MAX_SIZE = 128 * MiB  # beyond this, not worth a core's time
WORTH = 0.9  # keep a variant only if it is at most 90% of the original
GZIP_LEVEL = 9
_STALE_TMP_SECONDS = 3600
_NAME = re.compile(r"^([0-9a-f]{16,128})\.(br|gz|none)$")
_SUFFIX = {"br": "br", "gzip": "gz"}


def brotli_quality(size: int) -> int:
    """Quality for a file of ``size`` bytes; variants are made once, so size wins over time.

    Measured on a 0.9 MB wasm on 2 cores: q11 gives 0.219 of the input in 2.2 s,
    q9 0.247 in 0.11 s, q5 0.257 in 0.03 s; gzip -9 gives 0.264.
    """
    if size <= 4 * MiB:
        return 11
    if size <= 32 * MiB:
        return 9
    return 5


@dataclass(frozen=True, slots=True)
class Variant:
    """One stored compressed copy: ``coding`` is ``br`` or ``gzip``; ``body`` if held in memory."""

    coding: str
    path: str
    size: int
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class _Job:
    digest: str
    source: str
    verify: bool
    text: bool
    loop: asyncio.AbstractEventLoop
    done: Callable[[str, tuple[Variant, ...]], None]


class Sidecars:
    """The sidecar directory, its index (digest -> codings, LRU order) and the producer thread.

    ``lookup`` and ``submit`` are cheap and safe from any thread; ``done`` callbacks run on
    the event loop that submitted the job.
    """

    def __init__(
        self, directory: Path, *, max_bytes: int, max_files: int, memory_file_max: int
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.memory_file_max = memory_file_max
        self._lock = threading.Lock()
        self._index: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._bytes = 0
        self._pending: set[str] = set()
        self._queue: queue.Queue[_Job] = queue.Queue(maxsize=1024)
        self._thread: threading.Thread | None = None
        self.produced = 0  # variants sets made by this process (tests, metrics)
        self.usable = True
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._scan()
        except OSError as exc:
            log.warning("compressed variants disabled: cannot use %s: %s", directory, exc)
            self.usable = False

    def _scan(self) -> None:
        found: dict[str, tuple[float, dict[str, int]]] = {}
        now = time.time()
        with os.scandir(self.directory) as entries:
            for item in entries:
                st = item.stat(follow_symlinks=False)
                if item.name.startswith(".") and now - st.st_mtime > _STALE_TMP_SECONDS:
                    with contextlib.suppress(OSError):
                        os.unlink(item.path)  # left behind by a crash mid-write
                    continue
                match = _NAME.match(item.name)
                if match is None:
                    continue
                digest, suffix = match.groups()
                mtime, codings = found.setdefault(digest, (st.st_mtime, {}))
                codings[{"br": "br", "gz": "gzip"}.get(suffix, suffix)] = st.st_size
                found[digest] = (max(mtime, st.st_mtime), codings)
        for digest, (_, codings) in sorted(found.items(), key=lambda kv: kv[1][0]):
            # Complete sets only: a .br (with or without .gz) or a .none marker.
            if "br" not in codings and "none" not in codings:
                for suffix in ("gz", "br"):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(self.directory, f"{digest}.{suffix}"))
                continue
            codings.pop("none", None)
            self._index[digest] = codings
            self._bytes += sum(codings.values())
        self._evict(keep="")

    def path(self, digest: str, coding: str) -> str:
        return os.path.join(self.directory, f"{digest}.{_SUFFIX[coding]}")

    def lookup(self, digest: str) -> tuple[Variant, ...] | None:
        """The stored variants (``()``: incompressible), or None if not produced yet."""
        with self._lock:
            codings = self._index.get(digest)
            if codings is None:
                return None
            self._index.move_to_end(digest)
            return tuple(
                Variant(coding, self.path(digest, coding), size)
                for coding, size in sorted(codings.items())
            )

    def submit(
        self,
        digest: str,
        source: str,
        *,
        verify: bool,
        text: bool,
        done: Callable[[str, tuple[Variant, ...]], None],
    ) -> None:
        """Queue the production of ``digest``'s variants from ``source`` (once; never blocks)."""
        if not self.usable:
            return
        with self._lock:
            if digest in self._pending or digest in self._index:
                return
            self._pending.add(digest)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pf-static-compress", daemon=True
                )
                self._thread.start()
        job = _Job(digest, source, verify, text, asyncio.get_running_loop(), done)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            with self._lock:
                self._pending.discard(digest)  # asked for again by a later request

    def discard(self, digest: str) -> None:
        """Forget a digest whose files went missing or changed, so it is produced again."""
        with self._lock:
            codings = self._index.pop(digest, None)
            if codings is None:
                return
            self._bytes -= sum(codings.values())
        for suffix in ("br", "gz", "none"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, f"{digest}.{suffix}"))

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                variants = self._produce(job)
            except Exception:  # a bad file must not stop the thread
                log.exception("cannot compress %s", job.source)
                variants = None
            with self._lock:
                self._pending.discard(job.digest)
            if variants is not None:
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    job.loop.call_soon_threadsafe(job.done, job.digest, variants)

    def _produce(self, job: _Job) -> tuple[Variant, ...] | None:
        with open(job.source, "rb") as source:
            data = source.read(MAX_SIZE + 1)
        if len(data) > MAX_SIZE:
            return None
        if job.verify and hashlib.sha256(data).hexdigest() != job.digest:
            return None  # the file changed since it was hashed; a later request retries
        mode = brotli.MODE_TEXT if job.text else brotli.MODE_GENERIC
        # Written gzip first, brotli last: a .br (or .none) marks a complete set (see _scan).
        blobs = {
            "gzip": gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0),
            "br": brotli.compress(data, quality=brotli_quality(len(data)), mode=mode),
        }
        kept: dict[str, int] = {}
        variants: list[Variant] = []
        for coding, blob in blobs.items():
            if len(blob) > len(data) * WORTH or len(blobs["br"]) > len(data) * WORTH:
                continue  # no .br means none is kept, so a lone .gz is a torn set
            target = self.path(job.digest, coding)
            self._write(target, blob)
            kept[coding] = len(blob)
            body = blob if len(blob) <= self.memory_file_max else None
            variants.append(Variant(coding, target, len(blob), body))
        if not kept:
            self._write(os.path.join(self.directory, f"{job.digest}.none"), b"")
        with self._lock:
            self._index[job.digest] = kept
            self._bytes += sum(kept.values())
            self.produced += 1
            self._evict(keep=job.digest)
        return tuple(variants)

    def _write(self, target: str, blob: bytes) -> None:
        name = f".{os.path.basename(target)}.{os.getpid()}.{threading.get_ident()}"
        tmp = os.path.join(self.directory, name)
        try:
            with open(tmp, "wb") as out:
                out.write(blob)
            os.replace(tmp, target)  # atomic: readers see the whole variant or none
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _evict(self, keep: str) -> None:
        """Drop the least recently used digests past the caps (lock held)."""
        while (self._bytes > self.max_bytes or len(self._index) > self.max_files) and (
            len(self._index) > 1 or keep not in self._index
        ):
            digest, codings = next(iter(self._index.items()))
            if digest == keep:
                self._index.move_to_end(digest)
                continue
            del self._index[digest]
            self._bytes -= sum(codings.values())
            for suffix in ("br", "gz", "none"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, f"{digest}.{suffix}"))
