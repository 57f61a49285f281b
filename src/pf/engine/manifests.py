"""The action cache's manifests: action key -> manifest bytes and when last used, in one
SQLite file (``manifests.db`` in the cache directory).

A manifest used to be a file of its own. On a journalled disk a new file costs more
kernel time than a small compile's tool (0.4-0.7 ms per inode on ext4 here, against
10 us for a link), and a compile stored two: its output's blob and its manifest. A row
in a write-ahead log costs no inode. Blobs stay files: pf serves them as they are.

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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

FILE = "manifests.db"
# Another process's transaction is waited for this long before an operation fails.
_BUSY_SECONDS = 30.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS manifests ("
    " key TEXT PRIMARY KEY, data BLOB NOT NULL, used REAL NOT NULL, size INTEGER NOT NULL"
    ") WITHOUT ROWID"
)


def _make(connection: sqlite3.Connection) -> None:
    """Put the file in WAL mode and give it its table, if another process has not."""
    deadline = time.monotonic() + _BUSY_SECONDS
    while True:
        try:
            if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(_SCHEMA)
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

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` as the manifest of ``key``, used now."""
        self._connection().execute(
            "INSERT OR REPLACE INTO manifests (key, data, used, size) VALUES (?, ?, ?, ?)",
            (key, data, time.time(), len(data)),
        )

    def touch(self, key: str) -> None:
        """Mark ``key`` used now (the recency eviction goes by)."""
        self._connection().execute(
            "UPDATE manifests SET used = ? WHERE key = ?", (time.time(), key)
        )

    def drop(self, keys: Iterable[str]) -> None:
        """Remove the manifests of ``keys`` (one transaction)."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany("DELETE FROM manifests WHERE key = ?", ((k,) for k in keys))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def entries(self) -> Iterator[tuple[float, int, str]]:
        """``(last used, size, key)`` of every manifest."""
        rows = self._select("SELECT used, size, key FROM manifests")
        return ((float(used), int(size), str(key)) for used, size, key in rows)

    def totals(self) -> tuple[int, int]:
        """``(count, bytes)`` of the manifests."""
        rows = self._select("SELECT count(*), coalesce(sum(size), 0) FROM manifests")
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)


def measure(root: Path) -> tuple[int, int]:
    """``(count, bytes)`` of the manifests at ``root`` (none if it has no file)."""
    if not (root / FILE).exists():
        return 0, 0
    return Manifests(root).totals()
