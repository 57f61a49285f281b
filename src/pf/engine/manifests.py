"""The action cache's database: action key -> manifest bytes and when last used, and the
small blobs, in one SQLite file (``manifests.db`` in the cache directory).

A manifest used to be a file of its own. On a journalled disk a new file costs more
kernel time than a small compile's tool (0.4-0.7 ms per inode on ext4 here, against
10 us for a link), and a compile stored two: its output's blob and its manifest. A row
in a write-ahead log costs no inode. So a blob of at most ``INLINE_MAX`` bytes (a WAT
module, a small C one) is a row too, written in the same transaction as the manifest
that names it; a larger one stays a file, which pf serves as it is.

Every process and thread reaches the same file: SQLite locks it, in WAL mode readers
never wait for the writer, and ``synchronous=NORMAL`` keeps it consistent through a
crash of pf or of the machine (a commit a machine crash loses is a cache miss later).
Each thread opens its own connection, and a forked process opens new ones. A cache
directory this user may only read (a read-only mount) is read as an immutable file:
hits are served, and writing raises, like any write there.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

FILE = "manifests.db"
# Another process's transaction is waited for this long before an operation fails.
_BUSY_SECONDS = 30.0
# The largest blob kept as a row. SQLite reads a blob this small from its own file faster
# than the filesystem opens and reads a file of it, and writes it without an inode.
INLINE_MAX = 16 * 1024
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS manifests ("
    " key TEXT PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL, size INTEGER NOT NULL"
    ") WITHOUT ROWID",
    # Rows of up to 16 KiB: a table with a rowid keeps them out of its key's index.
    "CREATE TABLE IF NOT EXISTS blobs ("
    " digest TEXT PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL, size INTEGER NOT NULL)",
)


_PUT_MANIFEST = "INSERT OR REPLACE INTO manifests (key, data, used, size) VALUES (?, ?, ?, ?)"
_PUT_BLOB = (
    "INSERT INTO blobs (digest, data, used, size) VALUES (?, ?, ?, ?)"
    # Stored again: the same bytes, unless what was kept was damaged since.
    " ON CONFLICT (digest) DO UPDATE SET data = excluded.data, used = excluded.used,"
    " size = excluded.size"
)
_TOUCH_MANIFEST = "UPDATE manifests SET used = ? WHERE key = ?"


def _make(connection: sqlite3.Connection) -> None:
    """Put the file in WAL mode and give it its tables, if another process has not."""
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                connection.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            # Processes making a new file at once each read it, then each needs it alone
            # to change its journal: SQLite refuses all but one at once rather than let
            # them wait for each other, so the others try again.
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


class Manifests:
    """The manifests of one cache directory."""

    def __init__(self, root: Path) -> None:
        self.path = root / FILE
        self._local = threading.local()
        self._made = False
        self._made_lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.connection = self._open()
            local.pid = os.getpid()
        connection: sqlite3.Connection = local.connection
        return connection

    def _open(self) -> sqlite3.Connection:
        if not os.access(self.path.parent, os.W_OK):
            # Read-only: nothing changes the file meanwhile, so no lock and no WAL needed.
            uri = f"file:{self.path}?mode=ro&immutable=1"
            return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        try:
            return self._writable()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError):
                raise
        # Not a database (damaged): it holds only a cache's entries, which are rebuilt on
        # demand, so it is set aside and begun again rather than failing every compile.
        with contextlib.suppress(FileNotFoundError):
            self.path.replace(self.path.with_name(f"{FILE}.damaged"))
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(FILE + suffix).unlink()
        with self._made_lock:
            self._made = False
        return self._writable()

    def _writable(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA synchronous=NORMAL")
        with self._made_lock:
            if not self._made:
                _make(connection)
                self._made = True
        return connection

    def _select(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """The rows of a query; none from a read-only cache no one has stored in."""
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise

    def get(self, key: str) -> tuple[bytes, float] | None:
        """The manifest of ``key`` and when it was last used, or None."""
        rows = self._select("SELECT data, used FROM manifests WHERE key = ?", key)
        return (bytes(rows[0][0]), float(rows[0][1])) if rows else None

    def blob(self, digest: str) -> bytes | None:
        """The bytes of the blob kept here as ``digest``, unverified, or None."""
        rows = self._select("SELECT data FROM blobs WHERE digest = ?", digest)
        return bytes(rows[0][0]) if rows else None

    def put(self, key: str, data: bytes, blobs: Sequence[tuple[str, bytes]] = ()) -> None:
        """Store ``data`` as the manifest of ``key`` and ``blobs`` ``(digest, bytes)`` it
        names, all used now, in one transaction: a reader sees the manifest only with its
        blobs."""
        now = time.time()
        if not blobs:
            self._connection().execute(_PUT_MANIFEST, (key, data, now, len(data)))
            return
        with self._transaction() as connection:
            connection.executemany(
                _PUT_BLOB, ((digest, blob, now, len(blob)) for digest, blob in blobs)
            )
            connection.execute(_PUT_MANIFEST, (key, data, now, len(data)))

    def touch(self, key: str, digests: Sequence[str] = ()) -> None:
        """Mark ``key`` and the blobs ``digests`` used now (the recency eviction goes by)."""
        now = time.time()
        if not digests:
            self._connection().execute(_TOUCH_MANIFEST, (now, key))
            return
        with self._transaction() as connection:
            connection.execute(_TOUCH_MANIFEST, (now, key))
            connection.executemany(
                "UPDATE blobs SET used = ? WHERE digest = ?", ((now, d) for d in digests)
            )

    def drop(self, keys: Iterable[str], digests: Iterable[str] = ()) -> None:
        """Remove the manifests of ``keys`` and the blobs ``digests`` (one transaction)."""
        with self._transaction() as connection:
            connection.executemany("DELETE FROM manifests WHERE key = ?", ((k,) for k in keys))
            connection.executemany("DELETE FROM blobs WHERE digest = ?", ((d,) for d in digests))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def entries(self) -> Iterator[tuple[float, int, str]]:
        """``(last used, size, key)`` of every manifest."""
        rows = self._select("SELECT used, size, key FROM manifests")
        return ((float(used), int(size), str(key)) for used, size, key in rows)

    def blobs(self) -> Iterator[tuple[float, int, str]]:
        """``(last used, size, digest)`` of every blob kept here."""
        rows = self._select("SELECT used, size, digest FROM blobs")
        return ((float(used), int(size), str(digest)) for used, size, digest in rows)

    def totals(self) -> tuple[int, int, int]:
        """``(manifests, blobs, bytes)``: how many of each, and their bytes together."""
        manifests = self._select("SELECT count(*), coalesce(sum(size), 0) FROM manifests")
        blobs = self._select("SELECT count(*), coalesce(sum(size), 0) FROM blobs")
        count, size = manifests[0] if manifests else (0, 0)
        kept, kept_size = blobs[0] if blobs else (0, 0)
        return int(count), int(kept), int(size) + int(kept_size)


def measure(root: Path) -> tuple[int, int, int]:
    """``(manifests, blobs, bytes)`` of the database at ``root`` (none if it has no file)."""
    if not (root / FILE).exists():
        return 0, 0, 0
    return Manifests(root).totals()
