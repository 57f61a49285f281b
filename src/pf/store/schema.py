"""Every table of pf's database, in one MetaData; SQLAlchemy Core only.

``builds`` holds one row per build or task run, its columns made from the stored fields
of the build record (record.py); ``logs`` its output lines in order;
``blobs`` and ``actions`` the compile cache every process shares (by content digest and
by action key); ``tokens`` the API tokens and ``sessions`` the dashboard's sign-ins,
both by the SHA-256 of their secret only. Times are epoch seconds (float); structured
fields are JSON. Nothing outside ``pf.store`` sees these tables: queries live in
builds.py, logs.py, tokens.py and shared.py and hand out plain data. Imports SQLAlchemy
and the build record only.
"""

from __future__ import annotations

from typing import Any

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
from sqlalchemy.types import TypeEngine

from pf.store.record import Storage, stored_fields

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _column(name: str, storage: Storage, default: object) -> Column[Any]:
    kind: TypeEngine[Any] | type[TypeEngine[Any]] = _TYPES[storage.type]
    if storage.type == "text" and storage.length is not None:
        kind = String(storage.length)
    return Column(
        name,
        kind,
        primary_key=storage.primary_key,
        nullable=storage.nullable,
        default=default,
        server_default=storage.server_default,
    )


_TYPES: dict[str, type[TypeEngine[Any]]] = {
    "text": Text,
    "integer": Integer,
    "float": Float,
    "boolean": Boolean,
    "json": JSON,
}

# One column per stored field of the build record, in its order (store.record).
builds = Table(
    "builds",
    metadata,
    *(_column(*stored) for stored in stored_fields()),
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
