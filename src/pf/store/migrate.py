"""The schema's version: one ``schema_version`` row, and the ordered steps that upgrade it.

Version 1 is the schema pf created before it counted versions, so a database that has
pf's tables but no ``schema_version`` table is version 1 and is upgraded in place, never
recreated. An empty database gets the current tables from ``schema.metadata`` at once and
is stamped with the latest version; a database at version ``n`` runs ``STEPS[n - 1:]``,
each in order, in the same transaction. A database newer than this pf is refused.

Every migration holds a lock that two processes starting at once take in turn, so one
migrates and the other then finds the schema current: ``pg_advisory_xact_lock`` on
PostgreSQL (its DDL is transactional, so a failed step leaves nothing behind), and
SQLite's write lock (``BEGIN IMMEDIATE``) on SQLite. A change to schema.py comes with a
step here that brings a database of the previous version to the same tables. Imports
SQLAlchemy, errors and this package's schema only.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, inspect, select

from pf.errors import StoreError
from pf.store.schema import metadata


def _queue_schema(conn: Connection) -> None:
    """Procrastinate's tables and functions (the job queue of pf worker), on PostgreSQL.

    Applied here, under the migration lock, so two processes starting at once never
    both create them. A Procrastinate release that changes its schema comes with a
    step here that runs its migration files (the dependency is pinned below 4).
    """
    if conn.dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    # Through the driver's cursor with no parameters: the SQL holds '%' signs that a
    # parameterised execute would read as placeholders.
    cursor = conn.connection.cursor()
    try:
        cursor.execute(SchemaManager.get_schema())
    finally:
        cursor.close()


def _v2(conn: Connection) -> None:
    """Version 2: builds.attempt and .client, the shared compile cache, the job queue.

    A version 1 database may have had its tables made from this schema.py (see
    ``_VERSION_1``): only the columns it lacks are added.
    """
    present = {column["name"] for column in inspect(conn).get_columns("builds")}
    if "attempt" not in present:
        conn.exec_driver_sql("ALTER TABLE builds ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0")
    if "client" not in present:
        conn.exec_driver_sql("ALTER TABLE builds ADD COLUMN client VARCHAR(128)")
    metadata.create_all(conn, tables=[metadata.tables["blobs"], metadata.tables["actions"]])
    _queue_schema(conn)


# Step i upgrades a database from version i + 1 to version i + 2.
STEPS: list[Callable[[Connection], None]] = [_v2]

# What a new database gets beside schema.metadata's tables (which create_all makes).
_OUTSIDE_METADATA: list[Callable[[Connection], None]] = [_queue_schema]

# Any 64-bit number, the same in every pf: the advisory lock that serialises migrations.
_PG_LOCK_KEY = 0x70665F736368656D  # "pf_schem"

# The tables of version 1; the oldest pf made only the first two. A later step that
# alters tokens or sessions must allow for their having been created from its schema.py.
_VERSION_1 = ("builds", "logs", "tokens", "sessions")

# Not in schema.metadata: create_all must never make it without its row.
_versions = Table("schema_version", MetaData(), Column("version", Integer, nullable=False))


def latest() -> int:
    """The schema version this pf writes."""
    return 1 + len(STEPS)


def migrate(engine: Engine, display: str) -> int:
    """Bring the database to ``latest()`` under the migration lock; returns its version.

    SQLAlchemy errors propagate (the caller translates them); a database newer than
    this pf is a StoreError.
    """
    if engine.dialect.name == "sqlite":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            # The driver would open a deferred transaction itself; an immediate one takes
            # the write lock before anything is read, so a second process waits here
            # (busy_timeout) instead of racing the first one's CREATE TABLEs.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                version = _upgrade(conn, display)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
            return version
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        return _upgrade(conn, display)


def _upgrade(conn: Connection, display: str) -> int:
    inspector = inspect(conn)
    if inspector.has_table(_versions.name):
        version = conn.execute(select(_versions.c.version)).scalar_one_or_none()
        if version is None:
            raise StoreError(
                f"{display} has an empty schema_version table",
                hint="restore a backup, or move the database aside to start a new history",
            )
    elif inspector.has_table("builds"):
        # Made by a pf before versions were counted, which created whichever of its
        # tables were missing on every start (the oldest had no tokens or sessions):
        # version 1 is that, done once more.
        version = 1
        metadata.create_all(conn, tables=[metadata.tables[name] for name in _VERSION_1])
        _versions.create(conn)
        conn.execute(_versions.insert().values(version=version))
    else:
        metadata.create_all(conn)
        for make in _OUTSIDE_METADATA:
            make(conn)
        _versions.create(conn)
        conn.execute(_versions.insert().values(version=latest()))
        return latest()
    if version > latest():
        raise StoreError(
            f"{display} has schema version {version}, newer than this pf's {latest()}: "
            "upgrade pf to use it"
        )
    for step in STEPS[version - 1 :]:
        step(conn)
    if version < latest():
        conn.execute(_versions.update().values(version=latest()))
    return latest()
