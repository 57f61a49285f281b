"""The build record: what pf knows of one build or task run, defined once.

BuildRecord's fields are the record's fields, with their types, which may be missing
(``| None``), their defaults and their order. Each stored field says how
(``_stored``): schema.py makes the ``builds`` table's columns from them, in this order,
and ``values``/``from_values`` are the row mapping that builds.py writes and reads (and
that the job queue carries to a pf worker). The one field never stored, ``eta``, is
worked out when a live build's record is taken. The engine's Job produces records and is
rebuilt from them; the API's JSON form of a record and its OpenAPI schema are the
server's (pf.server.records), made from its own table over these same fields.
Imports nothing of pf, and not SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Literal

__all__ = [
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "FINISHED",
    "QUEUED",
    "RUNNING",
    "BuildRecord",
    "Storage",
    "stored_fields",
]

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = (COMPLETED, FAILED, CANCELLED)

SqlType = Literal["text", "integer", "float", "boolean", "json"]


@dataclass(frozen=True, slots=True)
class Storage:
    """How a field is stored: its SQL type (text of at most ``length`` characters, or of
    any length when None), whether the column may be NULL, and the value the database
    itself fills in (for a column added to a table that already had rows)."""

    type: SqlType
    length: int | None = None
    nullable: bool = True
    primary_key: bool = False
    server_default: str | None = None


_STORAGE = "pf.store.record"


def _stored(
    type: SqlType,
    length: int | None = None,
    *,
    nullable: bool = True,
    primary_key: bool = False,
    server_default: str | None = None,
) -> dict[str, Storage]:
    return {_STORAGE: Storage(type, length, nullable, primary_key, server_default)}


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildRecord:
    """One build or task run: times in epoch seconds, structured fields as plain data."""

    id: str = field(metadata=_stored("text", 128, nullable=False, primary_key=True))
    kind: str = field(metadata=_stored("text", 16, nullable=False))  # 'compile' | 'task'
    # A task run's language is 'task' and its target the task's name.
    language: str = field(metadata=_stored("text", 32, nullable=False))
    target: str = field(metadata=_stored("text", 255, nullable=False))
    project: str | None = field(default=None, metadata=_stored("text", 255))
    status: str = field(metadata=_stored("text", 16, nullable=False))
    progress: int = field(default=0, metadata=_stored("integer", nullable=False))
    phase: str | None = field(default=None, metadata=_stored("text", 32))
    # Seconds left by the estimate when the record was taken; None once it ended.
    eta: float | None = None
    created_at: float = field(metadata=_stored("float", nullable=False))
    started_at: float | None = field(default=None, metadata=_stored("float"))
    ended_at: float | None = field(default=None, metadata=_stored("float"))
    duration_ms: int | None = field(default=None, metadata=_stored("integer"))
    error: str | None = field(default=None, metadata=_stored("text"))
    cached: bool = field(default=False, metadata=_stored("boolean", nullable=False))
    action_key: str | None = field(default=None, metadata=_stored("text", 64))
    options: Mapping[str, Any] = field(default_factory=dict, metadata=_stored("json"))
    # {name, kind, digest, size} of each output, its bytes in the blob store.
    artifacts: tuple[Mapping[str, Any], ...] = field(default=(), metadata=_stored("json"))
    timings: Mapping[str, float] = field(default_factory=dict, metadata=_stored("json"))
    diagnostics: tuple[Mapping[str, Any], ...] = field(default=(), metadata=_stored("json"))
    task: str | None = field(default=None, metadata=_stored("text", 255))
    params: Mapping[str, Any] | None = field(default=None, metadata=_stored("json"))
    # Inline sources of a POST /api/compile build, kept only while it is queued, so a
    # restart can run it again; cleared when the build ends.
    sources: Mapping[str, str] | None = field(default=None, metadata=_stored("json"))
    # Which run of the build wrote the record: a build a pf worker took up again after
    # another one died counts 1, 2, ...; a record of an earlier run never overwrites a
    # later one's (store.builds.upsert).
    attempt: int = field(default=0, metadata=_stored("integer", nullable=False, server_default="0"))
    # Who submitted it ("token:<name>", "addr:<address>"): a build token cancels only its
    # own builds, through whichever pf serve process it asks.
    client: str | None = field(default=None, metadata=_stored("text", 128))

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def values(self) -> dict[str, Any]:
        """The stored fields as plain data, ready for JSON: one row of the builds table."""
        return {f.name: _plain(getattr(self, f.name)) for f in _STORED}

    @classmethod
    def from_values(cls, values: Mapping[Any, Any]) -> BuildRecord:
        """A record from a row of the builds table, or from ``values()`` sent as JSON.

        A column a row has as NULL where the field has no None (a collection) takes the
        field's default."""
        given: dict[str, Any] = {}
        for f in _STORED:
            value = values.get(f.name, MISSING)
            if value is MISSING:
                continue
            empty = _empty(f)
            if value is None and empty is not None:
                value = empty
            elif isinstance(empty, tuple):
                value = tuple(value)
            elif f.metadata[_STORAGE].type == "boolean":
                value = bool(value)
            given[f.name] = value
        return cls(**given)


def _empty(f: Field[Any]) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return f.default if f.default is not MISSING else None


# Most fields; an ABC's isinstance (Mapping) is several times slower than a type lookup,
# and the writer turns every row a build writes into values.
_SCALARS = frozenset({str, int, float, bool, type(None)})


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return dict(value)
    return value


_STORED: tuple[Field[Any], ...] = tuple(f for f in fields(BuildRecord) if _STORAGE in f.metadata)


def stored_fields() -> Iterator[tuple[str, Storage, Any]]:
    """Each stored field in order: its name, how it is stored, and the value an insert
    without it would take (None: no default, or a collection's)."""
    for f in _STORED:
        scalar = f.default is not MISSING and not isinstance(f.default, tuple)
        yield f.name, f.metadata[_STORAGE], f.default if scalar else None
