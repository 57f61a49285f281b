"""The queries on build records (record.py): one row per build or task run.

Functions take a Connection (the caller owns the transaction) and return BuildRecords,
never SQLAlchemy Rows, so nothing upstream imports SQLAlchemy. Imports the schema, the
record, db's dialect-neutral upsert and prepared only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import (
    Connection,
    and_,
    case,
    delete,
    func,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement

from pf.store.db import upsert_into
from pf.store.prepared import Prepared
from pf.store.record import COMPLETED, FAILED, FINISHED, QUEUED, RUNNING, BuildRecord
from pf.store.schema import builds

INTERRUPTED = "interrupted by restart"

# Rows per statement of an upsert. With RETURNING, SQLAlchemy sends a batch as one
# multi-row INSERT whose text depends on its row count, and the driver keeps each text
# it has seen prepared (SQLite's statement cache, psycopg's prepared statements): with
# batches of any size up to hundreds of rows, that cache held ~0.6 MB per statement and
# the server's memory grew with every build recorded. Pages of this many rows leave at
# most this many statement texts, each small.
UPSERT_PAGE_ROWS = 32

_COLUMNS = tuple(c.name for c in builds.columns)


def _rank(status: ColumnElement[str]) -> ColumnElement[int]:
    # Literals, not parameters: the upsert runs as an executemany.
    return case(
        (status == literal_column(f"'{QUEUED}'"), literal_column("0")),
        (status == literal_column(f"'{RUNNING}'"), literal_column("1")),
        else_=literal_column("2"),
    )


def _guarded(dialect: str) -> Insert:
    """The upsert of a build record in ``dialect``: written unless it would take the
    stored record back (then it changes no row)."""
    statement = upsert_into(dialect, builds)
    new = statement.excluded
    columns = [c.name for c in builds.columns if c.name != "id"]
    return statement.on_conflict_do_update(
        index_elements=[builds.c.id],
        set_={name: new[name] for name in columns},
        where=and_(
            *(builds.c.status != literal_column(f"'{done}'") for done in FINISHED),
            or_(
                new.attempt > builds.c.attempt,
                and_(new.attempt == builds.c.attempt, _rank(new.status) >= _rank(builds.c.status)),
            ),
        ),
    )


# Built once per dialect: building the statement cost more than running it.
_UPSERTS: dict[str, Insert] = {}
_ONE_ROW: dict[tuple[str, str], Prepared] = {}


def upsert(conn: Connection, rows: Sequence[BuildRecord]) -> set[str]:
    """Insert ``rows``, replacing every field of those already stored, unless that would
    take a record back; returns the ids whose row was written.

    A record only moves forward: a finished build is never written again, and a row of
    a build's earlier run (``attempt``) or of an earlier state (queued after running)
    is refused. So a pf worker that went on after its build was given to another one,
    or a late "queued" from the process that submitted it, changes nothing.
    """
    if not rows:
        return set()
    dialect = conn.dialect
    # The last write of a build wins: a batch may hold its queued and running states.
    latest = {row.id: row for row in rows}
    if dialect.name == "sqlite":
        # In-process SQLite has no round trip to save: one prepared text, a row at a
        # time, costs a tenth of a multi-row statement built and compiled by SQLAlchemy.
        # Whether the row was written is its count of changed rows, not a RETURNING
        # row to fetch (each step into SQLite gives up the GIL and waits to get it back).
        key = (dialect.name, dialect.paramstyle)
        one = _ONE_ROW.get(key)
        if one is None:
            one = _ONE_ROW[key] = Prepared(_guarded(dialect.name), dialect, _COLUMNS)
        return {row.id for row in latest.values() if one.execute(conn, row.values())}
    guarded = _UPSERTS.get(dialect.name)
    if guarded is None:
        guarded = _UPSERTS[dialect.name] = _guarded(dialect.name).returning(builds.c.id)
    result = conn.execute(
        guarded.execution_options(insertmanyvalues_page_size=UPSERT_PAGE_ROWS),
        [row.values() for row in latest.values()],
    )
    return set(result.scalars())


def status_counts(conn: Connection) -> dict[str, int]:
    """How many builds are in each status."""
    query = select(builds.c.status, func.count()).group_by(builds.c.status)
    return {status: int(n) for status, n in conn.execute(query)}


def cache_counts(conn: Connection) -> tuple[int, int]:
    """Completed compiles answered from the cache, and those that ran a compiler."""
    query = (
        select(builds.c.cached, func.count())
        .where(builds.c.status == COMPLETED, builds.c.kind == "compile")
        .group_by(builds.c.cached)
    )
    found = {bool(cached): int(n) for cached, n in conn.execute(query)}
    return found.get(True, 0), found.get(False, 0)


def get(conn: Connection, build_id: str) -> BuildRecord | None:
    found = conn.execute(select(builds).where(builds.c.id == build_id)).mappings().first()
    return BuildRecord.from_values(found) if found is not None else None


def recent(
    conn: Connection,
    limit: int,
    *,
    status: str | None = None,
    language: str | None = None,
    exclude: Iterable[str] = (),
) -> list[BuildRecord]:
    """The newest builds first, optionally of one status or language."""
    query = select(builds).order_by(builds.c.created_at.desc(), builds.c.id.desc()).limit(limit)
    if status is not None:
        query = query.where(builds.c.status == status)
    if language is not None:
        query = query.where(builds.c.language == language)
    skipped = list(exclude)
    if skipped:
        query = query.where(builds.c.id.not_in(skipped))
    return [BuildRecord.from_values(m) for m in conn.execute(query).mappings()]


def latest_completed(
    conn: Connection, project: str, language: str, target: str
) -> BuildRecord | None:
    """The completed build of ``project`` in ``language`` for ``target`` that ended last."""
    query = (
        select(builds)
        .where(
            builds.c.status == COMPLETED,
            builds.c.project == project,
            builds.c.language == language,
            builds.c.target == target,
        )
        .order_by(builds.c.ended_at.desc())
        .limit(1)
    )
    found = conn.execute(query).mappings().first()
    return BuildRecord.from_values(found) if found is not None else None


def completed_projects(conn: Connection, limit: int) -> list[BuildRecord]:
    """The ``limit`` completed project builds that ended last, newest first."""
    query = (
        select(builds)
        .where(builds.c.status == COMPLETED, builds.c.project.is_not(None))
        .order_by(builds.c.ended_at.desc())
        .limit(limit)
    )
    return [BuildRecord.from_values(m) for m in conn.execute(query).mappings()]


def with_status(conn: Connection, status: str) -> list[BuildRecord]:
    """Every build in ``status``, oldest first."""
    query = select(builds).where(builds.c.status == status).order_by(builds.c.created_at)
    return [BuildRecord.from_values(m) for m in conn.execute(query).mappings()]


def mark_interrupted(conn: Connection, last_seen: Mapping[str, float], now: float) -> int:
    """Builds left running by a stopped process become failed; returns how many.

    Each one ends at its last sign of life: the latest of its start and ``last_seen``
    (its last log line), else ``now``; its progress and phase stay as last stored.
    """
    running = conn.execute(
        select(builds.c.id, builds.c.started_at).where(builds.c.status == RUNNING)
    ).all()
    for build_id, started_at in running:
        seen = [t for t in (started_at, last_seen.get(build_id)) if t is not None]
        ended_at = max(seen) if seen else now
        duration = round((ended_at - started_at) * 1000) if started_at is not None else None
        conn.execute(
            update(builds)
            .where(builds.c.id == build_id)
            .values(
                status=FAILED,
                error=INTERRUPTED,
                ended_at=ended_at,
                duration_ms=duration,
                sources=None,
            )
        )
    return len(running)


def running_ids(conn: Connection) -> list[str]:
    return list(conn.execute(select(builds.c.id).where(builds.c.status == RUNNING)).scalars())


def durations(conn: Connection, per_pair: int) -> dict[tuple[str, str], list[float]]:
    """Seconds taken by the latest ``per_pair`` compiled (not cached) builds per pair.

    Task runs count too: their pair is ("task", task name), never a compile's.
    """
    query = (
        select(builds.c.language, builds.c.target, builds.c.duration_ms)
        .where(
            builds.c.status == COMPLETED,
            builds.c.cached.is_(False),
            builds.c.duration_ms.is_not(None),
        )
        .order_by(builds.c.ended_at.desc())
        .limit(per_pair * 64)
    )
    found: dict[tuple[str, str], list[float]] = {}
    for language, target, duration_ms in conn.execute(query):
        samples = found.setdefault((language, target), [])
        if len(samples) < per_pair:
            samples.append(duration_ms / 1000)
    for samples in found.values():
        samples.reverse()  # oldest first, as the estimator appends
    return found


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(builds)).scalar_one())


def expired(conn: Connection, *, ended_before: float | None, keep: int | None) -> list[str]:
    """Ids of finished builds past retention: ended before a time, or beyond the newest ``keep``."""
    finished: ColumnElement[bool] = builds.c.status.in_(FINISHED)
    ids: set[str] = set()
    if ended_before is not None:
        query = select(builds.c.id).where(finished, builds.c.ended_at < ended_before)
        ids.update(conn.execute(query).scalars())
    if keep is not None:
        query = (
            select(builds.c.id)
            .where(finished)
            .order_by(builds.c.created_at.desc(), builds.c.id.desc())
            .offset(keep)
        )
        ids.update(conn.execute(query).scalars())
    return sorted(ids)


def delete_builds(conn: Connection, ids: Sequence[str]) -> int:
    removed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        removed += int(conn.execute(delete(builds).where(builds.c.id.in_(chunk))).rowcount or 0)
    return removed
