"""Build logs: ordered output lines per build, bounded in lines and bytes.

A LogBudget decides, line by line, what a build may keep: past PF_MAX_LOGS_PER_BUILD
lines or PF_MAX_LOG_SIZE bytes it admits one marker line saying so, then nothing. A line
belongs to one run (``attempt``) of its build: once a later run of the build is recorded
(a pf worker took it up after the one running it stopped), lines of the earlier run are
refused, so a worker that was only slow cannot mix its output into the new run's. The
functions take a Connection and return frozen LogLines, never Rows. Imports the schema
and prepared only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select

from pf.store.prepared import Prepared
from pf.store.schema import builds, logs

STREAMS = ("stdout", "stderr", "pf")
LEVELS = ("info", "warn", "error")


@dataclass(frozen=True)
class LogLine:
    """One line of a build's output; ``stream`` is stdout, stderr or pf (pf's own notes)."""

    build_id: str
    seq: int
    ts: float
    stream: str
    level: str
    text: str
    attempt: int = 0  # the run of the build that wrote it; not stored


def cap_marker(max_lines: int, max_bytes: int) -> str:
    return (
        f"[log truncated: more than {max_lines} lines or {max_bytes} bytes; "
        "the rest of this build's output was discarded]"
    )


class LogBudget:
    """Admits a build's lines until its line or byte cap, then one marker line, then none.

    Thread-safe: a compiler's stdout and stderr readers may call ``admit`` at once.
    """

    def __init__(self, max_lines: int, max_bytes: int) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.lines = 0
        self.size = 0
        self.exhausted = False
        self._lock = threading.Lock()

    def count_stored(self, lines: Sequence[LogLine]) -> None:
        """Count ``lines`` an earlier run of the build stored: this run's follow them,
        and the caps hold for the runs together."""
        with self._lock:
            self.lines += len(lines)
            self.size += sum(len(line.text.encode("utf-8", errors="replace")) + 1 for line in lines)

    def admit(self, text: str) -> tuple[int, str] | None:
        """``(seq, text)`` for the line to keep (maybe the marker), or None to drop it."""
        size = len(text.encode("utf-8", errors="replace")) + 1
        with self._lock:
            if self.exhausted:
                return None
            seq = self.lines
            self.lines += 1
            if seq >= self.max_lines or self.size + size > self.max_bytes:
                self.exhausted = True
                return seq, cap_marker(self.max_lines, self.max_bytes)
            self.size += size
            return seq, text


_LINE_COLUMNS = ("build_id", "seq", "ts", "stream", "level", "text")
_INSERTS: dict[tuple[str, str], Prepared] = {}


def append(
    conn: Connection, lines: Sequence[LogLine], written: Mapping[str, int] | None = None
) -> set[str]:
    """Store ``lines`` but those of a run of their build that a later run superseded;
    returns the ids of the builds whose lines were refused.

    ``written``: the attempt of each build whose record this transaction wrote, which is
    then the stored one: those builds are not read again.
    """
    if not lines:
        return set()
    current = dict(written or {})
    unknown = sorted({line.build_id for line in lines} - current.keys())
    if unknown:
        query = select(builds.c.id, builds.c.attempt).where(builds.c.id.in_(unknown))
        if conn.dialect.name == "postgresql":
            # Shared with the upsert that records a later run: either that run's row waits
            # for these lines (and the new run counts them), or they see the new attempt.
            query = query.with_for_update(read=True)
        current.update((build_id, int(attempt)) for build_id, attempt in conn.execute(query))
    refused = {line.build_id for line in lines if line.attempt < current.get(line.build_id, 0)}
    kept = [
        {name: getattr(line, name) for name in _LINE_COLUMNS}
        for line in lines
        if line.build_id not in refused
    ]
    if kept:
        dialect = conn.dialect
        key = (dialect.name, dialect.paramstyle)
        insert = _INSERTS.get(key)
        if insert is None:
            insert = _INSERTS[key] = Prepared(logs.insert(), dialect, _LINE_COLUMNS)
        insert.execute_many(conn, kept)
    return refused


def read(
    conn: Connection,
    build_id: str,
    after: int = -1,
    before: int | None = None,
    limit: int | None = None,
) -> list[LogLine]:
    """A build's lines in order, those numbered above ``after`` and below ``before``
    (the first ``limit`` of them)."""
    query = (
        select(
            logs.c.build_id,
            logs.c.seq,
            logs.c.ts,
            logs.c.stream,
            logs.c.level,
            logs.c.text,
        )
        .where(logs.c.build_id == build_id, logs.c.seq > after)
        .order_by(logs.c.seq)
    )
    if before is not None:
        query = query.where(logs.c.seq < before)
    if limit is not None:
        query = query.limit(limit)
    return [LogLine(**m) for m in conn.execute(query).mappings()]


def last_times(conn: Connection, build_ids: Sequence[str]) -> dict[str, float]:
    """The time of each build's last stored line (builds without lines are absent)."""
    if not build_ids:
        return {}
    query = (
        select(logs.c.build_id, func.max(logs.c.ts))
        .where(logs.c.build_id.in_(build_ids))
        .group_by(logs.c.build_id)
    )
    return {build_id: float(ts) for build_id, ts in conn.execute(query)}


def delete_for(conn: Connection, build_ids: Sequence[str]) -> int:
    removed = 0
    for start in range(0, len(build_ids), 500):
        chunk = build_ids[start : start + 500]
        result = conn.execute(delete(logs).where(logs.c.build_id.in_(chunk)))
        removed += int(result.rowcount or 0)
    return removed
