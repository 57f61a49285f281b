"""Every table of pf's database, in one MetaData; SQLAlchemy Core only.

``builds`` holds one row per build or task run, ``logs`` its output lines in order;
``blobs`` and ``actions`` the compile cache every process shares (by content digest and
by action key); ``tokens`` the API tokens and ``sessions`` the dashboard's sign-ins,
both by the SHA-256 of their secret only. Times are epoch seconds (float); structured
fields are JSON. Nothing outside ``pf.store`` sees these tables: queries live in
builds.py, logs.py, tokens.py and shared.py and hand out plain data. Imports SQLAlchemy
only.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

builds = Table(
    "builds",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),  # 'compile' | 'task'
    Column("language", String(32), nullable=False),  # 'task' for a task run
    Column("target", String(255), nullable=False),  # a task run's: the task's name
    Column("project", String(255)),
    Column("status", String(16), nullable=False),
    Column("progress", Integer, nullable=False, default=0),
    Column("phase", String(32)),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float),
    Column("ended_at", Float),
    Column("duration_ms", Integer),
    Column("error", Text),
    Column("cached", Boolean, nullable=False, default=False),
    Column("action_key", String(64)),
    Column("options", JSON),
    Column("artifacts", JSON),
    Column("timings", JSON),
    Column("diagnostics", JSON),
    Column("task", String(255)),
    Column("params", JSON),
    # Inline sources of a POST /api/compile build, kept only while it is queued, so a
    # restart can run it again; cleared when the build ends.
    Column("sources", JSON),
    # Which run of the build wrote the row: a build a pf worker took up again after
    # another one died counts 1, 2, ...; a row from an earlier run never overwrites a
    # later one's (store.builds.upsert).
    Column("attempt", Integer, nullable=False, default=0, server_default="0"),
    # Who submitted it ("token:<name>", "addr:<address>"): a build token cancels only its
    # own builds, through whichever pf serve process it asks.
    Column("client", String(128)),
    Index(None, "created_at"),
    Index(None, "status"),
    Index(None, "language", "target", "ended_at"),
)

logs = Table(
    "logs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("build_id", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("ts", Float, nullable=False),
    Column("stream", String(8), nullable=False),  # 'stdout' | 'stderr' | 'pf'
    Column("level", String(8), nullable=False),  # 'info' | 'warn' | 'error'
    Column("text", Text, nullable=False),
    Index(None, "build_id", "seq"),
)

# An API token: the secret itself is shown once and never stored.
tokens = Table(
    "tokens",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("scope", String(8), nullable=False),  # 'read' | 'build' | 'admin'
    Column("hash", String(64), nullable=False, unique=True),  # SHA-256 hex of the secret
    Column("created_at", Float, nullable=False),
    Column("last_used_at", Float),
)

# A dashboard sign-in: a cookie exchanged for a token; it acts with the token's scope and
# ends with it.
sessions = Table(
    "sessions",
    metadata,
    Column("hash", String(64), primary_key=True),  # SHA-256 hex of the cookie's value
    Column("token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index(None, "token"),
    Index(None, "expires_at"),
)

# The shared compile cache (store.shared): a build's outputs by their sha256, so that
# every pf process finds what any pf worker built; ``used_at`` orders eviction.
blobs = Table(
    "blobs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("used_at", Float, nullable=False),
    Index(None, "used_at"),
)

# Action key -> the manifest the action cache writes (engine.cache), as JSON text.
actions = Table(
    "actions",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("manifest", Text, nullable=False),
    Column("used_at", Float, nullable=False),
    Index(None, "used_at"),
)
