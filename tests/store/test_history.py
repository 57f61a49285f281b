"""The build history on a real SQLite file and a real PostgreSQL: records, logs, recovery,
retention, errors. Tests taking ``store`` run on both backends (``database_url``)."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path

import pytest

from pf.config import load_settings
from pf.errors import StoreError
from pf.store import BuildRecord, LogLine, Store, db, default_url
from pf.store.builds import UPSERT_PAGE_ROWS
from pf.store.db import StoreUnavailable, engine_url
from tests.statements import inserts_into


def _row(build_id: str, status: str = "completed", **fields: object) -> BuildRecord:
    values: dict[str, object] = {
        "id": build_id,
        "kind": "compile",
        "language": "c",
        "target": "wasm",
        "status": status,
        "created_at": 1000.0,
    }
    values.update(fields)
    return BuildRecord(**values)  # type: ignore[arg-type]


def test_default_url_is_pf_db_beside_the_cache(tmp_path: Path) -> None:
    settings = load_settings()
    assert default_url(settings) == f"sqlite:///{(tmp_path / 'pf.db').resolve()}"
    env = {"PF_DATABASE_URL": "sqlite:////elsewhere/x.db"}
    assert default_url(load_settings(environ=env)) == "sqlite:////elsewhere/x.db"


def test_open_creates_the_schema_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'state' / 'pf.db'}")
    store.open()
    store.write([_row("a")])
    store.close()
    with sqlite3.connect(tmp_path / "state" / "pf.db") as conn:
        tables = {name for (name,) in conn.execute("select name from sqlite_master")}
        assert {"builds", "logs"} <= tables
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_records_round_trip_with_their_structured_fields(store: Store) -> None:
    row = _row(
        "c-wasm-1",
        project="demo",
        started_at=1001.0,
        ended_at=1002.5,
        duration_ms=1500,
        cached=True,
        action_key="ab" * 32,
        options={"opt_level": "s", "exports": ["add"]},
        artifacts=({"name": "math.wasm", "kind": "wasm", "digest": "d" * 64, "size": 9},),
        timings={"queued": 0.5, "compile": 1.0},
        diagnostics=({"file": "a.c", "line": 1, "col": 2, "severity": "error", "message": "x"},),
    )
    store.write([row])
    assert store.get("c-wasm-1") == row
    assert store.get("missing") is None


def test_the_last_write_of_a_build_wins_within_and_across_batches(store: Store) -> None:
    store.write([_row("a", "queued"), _row("a", "running", progress=10)])
    assert store.get("a") == _row("a", "running", progress=10)
    store.write([_row("a", "failed", error="boom")])
    stored = store.get("a")
    assert stored is not None and (stored.status, stored.error) == ("failed", "boom")
    assert store.count() == 1


def test_batches_of_every_size_reuse_a_few_statement_texts(store: Store) -> None:
    # Each distinct statement text stays prepared in the driver's cache: one text per
    # batch size made the server's memory grow with every build it recorded.
    with inserts_into(store, "builds") as seen:
        for size in range(1, 121):
            store.write([_row(f"b{size}-{n}") for n in range(size)])
    texts = {statement for statement, _ in seen}
    assert store.count() == sum(range(1, 121))
    # One text per page size, and PostgreSQL's for a lone row besides.
    assert 0 < len(texts) <= UPSERT_PAGE_ROWS + 1


def test_recent_is_newest_first_and_filters(store: Store) -> None:
    store.write(
        [
            _row("old", created_at=1.0),
            _row("mid", created_at=2.0, language="rust", status="failed"),
            _row("new", created_at=3.0),
        ]
    )
    assert [r.id for r in store.recent(10)] == ["new", "mid", "old"]
    assert [r.id for r in store.recent(1)] == ["new"]
    assert [r.id for r in store.recent(10, status="failed")] == ["mid"]
    assert [r.id for r in store.recent(10, language="c")] == ["new", "old"]
    assert [r.id for r in store.recent(10, exclude=["new"])] == ["mid", "old"]


def test_logs_come_back_in_order(store: Store) -> None:
    lines = [LogLine("a", seq, 1000.0 + seq, "stdout", "info", f"line {seq}") for seq in range(5)]
    store.write([_row("a")], list(reversed(lines)))
    assert store.logs("a") == lines
    assert store.logs("b") == []


def test_recover_fails_running_builds_and_returns_queued_ones(store: Store) -> None:
    store.write(
        [
            _row("run", "running", started_at=5.0, progress=10, phase="compile"),
            _row("quiet", "running", started_at=7.0),
            _row("q2", "queued", created_at=2.0, sources={"a.wat": "(module)"}),
            _row("q1", "queued", created_at=1.0),
            _row("done", "completed"),
        ],
        [LogLine("run", 0, 6.5, "stdout", "info", "compiling")],
    )
    interrupted, queued = store.recover(now=99.0)
    assert interrupted == 2
    assert [r.id for r in queued] == ["q1", "q2"]
    assert queued[1].sources == {"a.wat": "(module)"}
    failed = store.get("run")
    assert failed is not None
    # It ends at its last sign of life (its last line), where it had got to.
    assert (failed.status, failed.error, failed.ended_at, failed.duration_ms) == (
        "failed",
        "interrupted by restart",
        6.5,
        1500,
    )
    assert (failed.progress, failed.phase) == (10, "compile")
    quiet = store.get("quiet")
    assert quiet is not None and (quiet.ended_at, quiet.duration_ms) == (7.0, 0)


def test_prune_by_age_and_by_count_takes_the_logs_along(store: Store) -> None:
    now = time.time()
    rows = [_row(f"b{i}", created_at=now - 100 + i, ended_at=now - 100 + i) for i in range(6)] + [
        _row("ancient", created_at=1.0, ended_at=2.0),
        _row("busy", "running", created_at=0.5),
    ]
    lines = [LogLine(r.id, 0, now, "pf", "info", "x") for r in rows]
    store.write(rows, lines)
    assert store.prune(ended_before=now - 86_400, keep=None) == 1
    assert store.get("ancient") is None and store.logs("ancient") == []
    assert store.prune(ended_before=None, keep=4) == 2
    assert {r.id for r in store.recent(100)} == {"b2", "b3", "b4", "b5", "busy"}
    assert store.logs("b0") == [] and len(store.logs("b5")) == 1
    assert store.get("busy") is not None  # running builds are never pruned


def test_durations_are_per_pair_oldest_first_and_skip_cached_builds(store: Store) -> None:
    store.write(
        [
            _row("a", ended_at=1.0, duration_ms=100),
            _row("b", ended_at=2.0, duration_ms=300),
            _row("c", ended_at=3.0, duration_ms=1, cached=True),
            _row("d", ended_at=4.0, duration_ms=700, language="rust"),
            _row("e", ended_at=5.0, duration_ms=None),
        ]
    )
    assert store.durations(per_pair=5) == {("c", "wasm"): [0.1, 0.3], ("rust", "wasm"): [0.7]}
    assert store.durations(per_pair=1) == {("c", "wasm"): [0.3], ("rust", "wasm"): [0.7]}


def test_a_database_that_cannot_be_opened_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the directory"):
        Store(f"sqlite:///{blocker / 'sub' / 'pf.db'}").open()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="is not a readable SQLite database") as raised:
        Store(f"sqlite:///{garbage}").open()
    assert str(garbage) in str(raised.value) and "move it aside" in str(raised.value)


def test_using_a_closed_store_is_a_store_error(tmp_path: Path) -> None:
    closed = Store(f"sqlite:///{tmp_path / 'pf.db'}")
    with pytest.raises(StoreError, match="not open"):
        closed.get("x")
    assert closed.ping() is False
    closed.open()
    assert closed.ping() is True


def test_a_postgresql_url_without_a_driver_opens_with_psycopg_3() -> None:
    for url in ("postgresql://pf@db/pf", "postgres://pf@db/pf", "postgresql+psycopg://pf@db/pf"):
        assert engine_url(url).drivername == "postgresql+psycopg"
    assert engine_url("sqlite:///x.db").drivername == "sqlite"


def test_a_database_that_does_not_answer_is_unavailable_in_one_line() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreUnavailable) as raised:
        Store(f"postgresql://pf@127.0.0.1:{port}/pf").open()
    assert "database unavailable" in raised.value.message
    assert "\n" not in raised.value.message
    assert raised.value.http_status == 503 and raised.value.retry_after >= 1


def test_a_refused_write_is_a_store_error_on_both_backends(database_url: str) -> None:
    store = Store(database_url)
    store.open()
    try:
        store.write([_row("a")])
        with pytest.raises(StoreError, match="constraint violated") as raised:
            store.write([], [LogLine("a", 0, 1.0, "stdout", "info", None)])  # type: ignore[arg-type]
        assert not isinstance(raised.value, StoreUnavailable)
    finally:
        store.close()


def test_a_locked_sqlite_file_is_unavailable_not_a_lost_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rows and lines reach SQLite's own cursor: "locked" must still read as a database
    # to wait for (the writer holds the batch and tries again), not one that refused it.
    monkeypatch.setattr(db, "_BUSY_TIMEOUT_MS", 100)
    store = Store(f"sqlite:///{tmp_path / 'pf.db'}")
    store.open()
    other = sqlite3.connect(tmp_path / "pf.db", isolation_level=None)
    try:
        store.write([_row("a")])
        other.execute("BEGIN IMMEDIATE")
        line = LogLine("a", 0, 1.0, "stdout", "info", "compiling")
        for rows, lines in (([_row("b")], []), ([], [line])):
            with pytest.raises(StoreUnavailable, match="locked"):
                store.write(rows, lines)
        other.execute("ROLLBACK")
        assert store.write([_row("b")], [line]) == {"a", "b"}
        assert [entry.text for entry in store.logs("a")] == ["compiling"]
    finally:
        other.close()
        store.close()


def test_a_record_only_moves_forward(store: Store) -> None:
    assert store.write([_row("b", "queued")]) == {"b"}
    assert store.write([_row("b", "running", progress=10)]) == {"b"}
    # A late "queued" from the process that submitted it changes nothing.
    assert store.write([_row("b", "queued")]) == set()
    # A later run (a worker took it up again) overwrites the earlier one's row...
    assert store.write([_row("b", "running", attempt=1, progress=20)]) == {"b"}
    # ...and the earlier run, still going somewhere, no longer can, not even to end it.
    assert store.write([_row("b", "completed", attempt=0)]) == set()
    assert store.write([_row("b", "completed", attempt=1, cached=True)]) == {"b"}
    # Ended: nothing writes it again.
    assert store.write([_row("b", "failed", attempt=2)]) == set()
    found = store.get("b")
    assert found is not None
    assert (found.status, found.attempt, found.cached) == ("completed", 1, True)
    assert store.status_counts() == {"completed": 1}
    assert store.cache_counts() == (1, 0)


def test_sqlite_hands_a_thread_back_the_connection_it_returned_last(tmp_path: Path) -> None:
    # The writer's next transaction then finds its page cache valid instead of re-reading
    # the pages another connection had cached before the writer's last commits.
    store = Store(f"sqlite:///{tmp_path / 'pf.db'}")
    store.open()
    try:
        with store.db.begin("outer") as outer:
            with store.db.begin("inner") as inner:
                inner_connection = inner.connection.dbapi_connection
            outer_connection = outer.connection.dbapi_connection
        assert inner_connection is not outer_connection
        with store.db.begin("next") as conn:
            assert conn.connection.dbapi_connection is outer_connection
    finally:
        store.close()
