"""Content-addressed blob store on the filesystem: bytes stored once, named by sha256.

A blob lives at ``<root>/<first two hex>/<digest>``, written to a temporary file and
renamed into place, so a reader never sees half a blob. Nothing is fsynced: a blob cut
short by a power cut fails its digest check at the next read and is rebuilt. Reading
verifies size and digest: a blob damaged on disk is reported as missing, never served.

Creating a directory costs a few tenths of a millisecond on a journalled disk, more than
the rest of a small blob's write: a shard directory is made only when a write finds it
missing, never again per blob.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20
# Files being written; a cache's measurement sweeps those a killed writer left.
TMP_PREFIX = ".tmp-"


def digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            sha.update(chunk)
    return sha.hexdigest()


class BlobStore:
    """Filesystem CAS rooted at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put_file(self, source: Path) -> tuple[str, int]:
        """Store a file's bytes; returns (digest, size). Idempotent."""
        with source.open("rb") as src:
            sha = hashlib.sha256()
            size = 0
            while chunk := src.read(_CHUNK):
                sha.update(chunk)
                size += len(chunk)
            digest = sha.hexdigest()
            target = self.path(digest)
            try:
                if os.stat(target).st_size == size:
                    return digest, size
            except FileNotFoundError:
                pass

            def copy(out: BinaryIO) -> None:
                # The same open file, read again: what is stored is what was hashed
                # unless the source changed meanwhile, which the next read's check sees.
                src.seek(0)
                while chunk := src.read(_CHUNK):
                    out.write(chunk)

            _write_into_place(target, copy)
        return digest, size

    def put_data(self, data: bytes) -> tuple[str, int]:
        """Store ``data``; returns (digest, size). Idempotent."""
        digest = digest_bytes(data)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(self.path(digest)).st_size == len(data):
                return digest, len(data)
        self.put_bytes(digest, data)
        return digest, len(data)

    def put_bytes(self, digest: str, data: bytes) -> Path:
        """Store ``data``, known to hash to ``digest`` (the caller checked); returns its path."""
        target = self.path(digest)
        _write_into_place(target, lambda out: out.write(data))
        return target

    def verified(self, digest: str, size: int) -> Path | None:
        """The blob's path if present and intact, else None (a damaged copy is removed)."""
        target = self.path(digest)
        try:
            if target.stat().st_size != size or digest_file(target) != digest:
                self.discard(digest)
                return None
        except FileNotFoundError:
            return None
        return target

    def discard(self, digest: str) -> int:
        """Remove a blob; returns the bytes freed."""
        target = self.path(digest)
        try:
            size = target.stat().st_size
            target.unlink()
        except FileNotFoundError:
            return 0
        return size


def create_temporary(directory: Path, mode: int) -> tuple[int, Path]:
    """A new file ``.tmp-<random>`` in ``directory``, open for writing, with ``mode``
    less the umask; the directory is made if missing.

    The name need not be unpredictable, only unused: O_EXCL refuses one that is taken,
    and another is drawn. ``random`` rather than ``os.urandom``, whose system call gives
    up the GIL on every blob.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    made = False
    while True:
        tmp = directory / f"{TMP_PREFIX}{random.getrandbits(64):016x}"
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            if made:
                raise
            directory.mkdir(parents=True, exist_ok=True)
            made = True


def _write_into_place(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``target`` read-only through a temporary file renamed over it, so a reader
    never sees half a blob and a failed write leaves nothing behind."""
    # Created read-only: the descriptor opened for writing may still write it.
    fd, tmp = create_temporary(target.parent, 0o444)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
