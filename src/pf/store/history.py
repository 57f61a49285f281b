"""The build history facade: build records and their logs, one unit of work per call.

Store is what the engine holds: each method opens one transaction on the Database and
calls the query functions of builds.py and logs.py, so the engine never sees a
Connection. Writes come in batches (``write``) from a single writer thread; reads may
come from any thread (SQLite WAL readers do not wait for the writer). Imports config,
errors and the modules of this package only.
"""

from __future__ import annotations

from collections.abc import Sequence

from pf.config import Settings
from pf.store import builds, logs
from pf.store.db import Database, default_url
from pf.store.logs import LogLine
from pf.store.record import QUEUED, BuildRecord


class Store:
    """Durable build records and logs behind one database URL.

    Constructing one is cheap; ``open()`` connects and creates the schema (blocking)::

        store = Store.for_settings(settings)
        store.open()
        store.write([row], [line])
    """

    def __init__(self, url: str) -> None:
        self.db = Database(url)

    @classmethod
    def for_settings(cls, settings: Settings) -> Store:
        """The store PF_DATABASE_URL names, or ``.pf/pf.db`` beside the cache."""
        return cls(default_url(settings))

    @property
    def url(self) -> str:
        return self.db.url

    @property
    def is_open(self) -> bool:
        return self.db.is_open

    def open(self) -> None:
        self.db.open()

    def close(self) -> None:
        self.db.close()

    def ping(self) -> bool:
        return self.db.is_open and self.db.ping()

    def write(self, rows: Sequence[BuildRecord], lines: Sequence[LogLine] = ()) -> set[str]:
        """Upsert ``rows`` and append ``lines`` in one transaction; returns the ids of the
        builds whose rows and lines were all written (a row that would take its record
        back is not: builds.upsert; nor are lines of a superseded run: logs.append)."""
        with self.db.begin("cannot record builds") as conn:
            upserted = builds.upsert(conn, rows)
            # The last row of a build in the batch is the one written.
            attempts = {row.id: row.attempt for row in rows}
            refused = logs.append(conn, lines, {i: attempts[i] for i in upserted})
        ids = {row.id for row in rows}
        refused |= ids - upserted
        return (ids | {line.build_id for line in lines}) - refused

    def get(self, build_id: str) -> BuildRecord | None:
        with self.db.begin("cannot read a build") as conn:
            return builds.get(conn, build_id)

    def recent(
        self,
        limit: int,
        *,
        status: str | None = None,
        language: str | None = None,
        exclude: Sequence[str] = (),
    ) -> list[BuildRecord]:
        with self.db.begin("cannot list builds") as conn:
            return builds.recent(conn, limit, status=status, language=language, exclude=exclude)

    def latest_completed(self, project: str, language: str, target: str) -> BuildRecord | None:
        with self.db.begin("cannot read a build") as conn:
            return builds.latest_completed(conn, project, language, target)

    def completed_projects(self, limit: int) -> list[BuildRecord]:
        with self.db.begin("cannot list builds") as conn:
            return builds.completed_projects(conn, limit)

    def logs(
        self,
        build_id: str,
        after: int = -1,
        before: int | None = None,
        limit: int | None = None,
    ) -> list[LogLine]:
        """A build's lines in order, those numbered above ``after`` and below ``before``
        (the first ``limit`` of them)."""
        with self.db.begin("cannot read build logs") as conn:
            return logs.read(conn, build_id, after, before, limit)

    def status_counts(self) -> dict[str, int]:
        with self.db.begin("cannot count builds") as conn:
            return builds.status_counts(conn)

    def cache_counts(self) -> tuple[int, int]:
        with self.db.begin("cannot count cache hits") as conn:
            return builds.cache_counts(conn)

    def count(self) -> int:
        with self.db.begin("cannot count builds") as conn:
            return builds.count(conn)

    def durations(self, per_pair: int) -> dict[tuple[str, str], list[float]]:
        with self.db.begin("cannot read build durations") as conn:
            return builds.durations(conn, per_pair)

    def recover(self, now: float) -> tuple[int, list[BuildRecord]]:
        """After a stop: running builds become failed ("interrupted by restart").

        Returns how many were marked, and the builds still queued, oldest first.
        """
        with self.db.begin("cannot recover builds") as conn:
            last_seen = logs.last_times(conn, builds.running_ids(conn))
            interrupted = builds.mark_interrupted(conn, last_seen, now)
            return interrupted, builds.with_status(conn, QUEUED)

    def prune(self, *, ended_before: float | None, keep: int | None) -> int:
        """Delete finished builds (and their logs) past retention; returns how many."""
        with self.db.begin("cannot prune build history") as conn:
            ids = builds.expired(conn, ended_before=ended_before, keep=keep)
            logs.delete_for(conn, ids)
            return builds.delete_builds(conn, ids)
