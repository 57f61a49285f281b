"""Content-addressed blob store on the filesystem: bytes stored once, named by sha256.

A blob lives at ``<root>/<first two hex>/<digest>``, written to a temporary file and
renamed into place, so a reader never sees half a blob. Reading verifies size and
digest: a blob damaged on disk is reported as missing, never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20


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
        digest = digest_file(source)
        target = self.path(digest)
        size = source.stat().st_size
        if target.exists() and target.stat().st_size == size:
            return digest, size

        def copy(out: BinaryIO) -> None:
            with source.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)

        _write_into_place(target, copy)
        return digest, size

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


def _write_into_place(target: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``target`` read-only through a temporary file renamed over it, so a reader
    never sees half a blob and a failed write leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
