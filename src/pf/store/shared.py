"""The compile cache every pf process shares: blobs by sha256 and action manifests by key,
in the build database, bounded in bytes.

In shared mode a pf worker's outputs must outlive the worker and its disk, and a hit
made by one worker must be a hit for every other: each process keeps its own cache
directory as a first tier (engine.cache) and puts what it builds here, blobs first and
the manifest last, so a reader that finds a manifest finds its blobs (unless eviction
took them meanwhile, which the reader sees as a miss). Past ``max_bytes`` of blobs the
least recently used go; a manifest whose blob went is dropped at its next lookup.

``flight(key)`` holds a PostgreSQL advisory lock named by the action key on a
connection of its own for the duration of a block: the same action submitted through
two processes runs once, the second finding the first's entry when it gets the lock.
The lock dies with its connection, so a killed process never leaves it held. On SQLite
(one machine, whose cache directory's flock already serialises) it is a no-op.
Imports SQLAlchemy, errors and this package's db and schema only.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Connection, delete, exc, func, select, update

from pf.store.db import Database, translate, upsert_into
from pf.store.schema import actions, blobs

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.dialects import postgresql, sqlite

# How often (in puts) the total is measured even when no put pushed it past the bound:
# other processes put too.
_MEASURE_EVERY = 64
# Recency finer than this changes no eviction in practice, and a hit then costs no write.
_TOUCH_INTERVAL = 60.0


class SharedCache:
    """Blobs and action manifests in ``db``, at most ``max_bytes`` of blobs::

    shared = SharedCache(database, 2 << 30)
    shared.put("ab12...", b'{"key": ...}', [(digest, Path("out.wasm"))])
    shared.manifest("ab12...")  # the bytes put, or None
    """

    def __init__(self, db: Database, max_bytes: int) -> None:
        self.db = db
        self.max_bytes = max_bytes
        self._puts = 0

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        return upsert_into(self.db.engine.dialect.name, table)

    def manifest(self, key: str) -> bytes | None:
        """The manifest stored for ``key``, or None; a hit refreshes its recency."""
        found = self._used(actions.c.key, key, actions.c.manifest)
        return None if found is None else str(found).encode()

    def blob(self, digest: str) -> bytes | None:
        """A blob's bytes, or None; a hit refreshes its recency."""
        found = self._used(blobs.c.digest, digest, blobs.c.data)
        return None if found is None else bytes(found)

    def _used(self, key: Column[str], value: str, wanted: Column[Any]) -> Any:
        """``wanted`` of the row whose ``key`` is ``value`` (None if there is none), and
        that row's last use refreshed, at most once a ``_TOUCH_INTERVAL``."""
        table = key.table
        now = time.time()
        with self.db.begin("cannot read the shared compile cache") as conn:
            found = conn.execute(select(wanted, table.c.used_at).where(key == value)).first()
            if found is None:
                return None
            if now - found.used_at > _TOUCH_INTERVAL:
                conn.execute(update(table).where(key == value).values(used_at=now))
            return found[0]

    def has_blob(self, digest: str) -> bool:
        with self.db.begin("cannot read the shared compile cache") as conn:
            query = select(blobs.c.digest).where(blobs.c.digest == digest)
            return conn.execute(query).first() is not None

    def put(self, key: str, manifest: bytes, files: Sequence[tuple[str, Path | bytes]]) -> None:
        """Store ``files`` (digest, path or bytes) unless present, then ``key``'s manifest."""
        now = time.time()
        added = 0
        for digest, file in files:
            if self.has_blob(digest):
                continue
            data = file if isinstance(file, bytes) else file.read_bytes()
            added += len(data)
            # One transaction per blob: a large output never holds the others' locks.
            with self.db.begin("cannot write the shared compile cache") as conn:
                statement = self._insert(blobs).values(
                    digest=digest, size=len(data), data=data, used_at=now
                )
                conn.execute(statement.on_conflict_do_nothing(index_elements=["digest"]))
        with self.db.begin("cannot write the shared compile cache") as conn:
            statement = self._insert(actions).values(
                key=key, manifest=manifest.decode(), used_at=now
            )
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["key"],
                    set_={"manifest": statement.excluded.manifest, "used_at": now},
                )
            )
        self._puts += 1
        if added and (added >= self.max_bytes or self._puts % _MEASURE_EVERY == 1):
            self.evict()

    def drop(self, key: str) -> None:
        """Forget ``key``'s manifest (one of its blobs is gone or damaged)."""
        with self.db.begin("cannot write the shared compile cache") as conn:
            conn.execute(delete(actions).where(actions.c.key == key))

    def usage(self) -> int:
        with self.db.begin("cannot measure the shared compile cache") as conn:
            return int(conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0))).scalar_one())

    def evict(self) -> int:
        """Remove least recently used blobs until they fit ``max_bytes``; returns bytes freed."""
        with self.db.begin("cannot evict from the shared compile cache") as conn:
            total = int(conn.execute(select(func.coalesce(func.sum(blobs.c.size), 0))).scalar_one())
            if total <= self.max_bytes:
                return 0
            freed = 0
            doomed = []
            query = select(blobs.c.digest, blobs.c.size).order_by(blobs.c.used_at)
            for digest, size in conn.execute(query):
                if total - freed <= self.max_bytes:
                    break
                doomed.append(digest)
                freed += int(size)
            for start in range(0, len(doomed), 500):
                chunk = doomed[start : start + 500]
                conn.execute(delete(blobs).where(blobs.c.digest.in_(chunk)))
            return freed

    @contextlib.contextmanager
    def flight(self, key: str) -> Iterator[None]:
        """Hold the cross-process single-flight lock of action ``key`` (PostgreSQL)."""
        engine = self.db.engine
        if engine.dialect.name != "postgresql":
            yield
            return
        lock = int(key[:15], 16)  # 60 bits of the key: fits PostgreSQL's bigint
        with translate("cannot take the single-flight lock"), engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(%s)", (lock,))
            conn.commit()
            try:
                yield
            finally:
                _unlock(conn, lock)


def _unlock(conn: Connection, lock: int) -> None:
    """Release an advisory lock; a connection that cannot is closed, which releases it."""
    try:
        conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (lock,))
        conn.commit()
    except exc.DBAPIError:
        # Pooled connections are reused, not closed: one that may still hold the lock
        # must not go back to the pool.
        conn.invalidate()
