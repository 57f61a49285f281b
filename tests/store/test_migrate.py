"""Schema versions on a real SQLite file and a real PostgreSQL: a new database, one made by
a pf before versions (version 1), an upgrade step, a newer database, two processes at once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from pf.errors import StoreError
from pf.store import BuildRecord, Store
from pf.store import migrate as migrations
from pf.store.db import engine_url
from pf.store.schema import builds, logs, metadata


@pytest.fixture
def raw(database_url: str) -> Iterator[Engine]:
    """An engine on the test's database that bypasses pf's Store."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(engine_url(database_url))
    yield engine
    engine.dispose()


def _versions(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT version FROM schema_version")).scalars())


def _row(build_id: str) -> BuildRecord:
    return BuildRecord(
        id=build_id, kind="compile", language="c", target="wasm", status="completed", created_at=1.0
    )


def test_a_new_database_gets_the_tables_and_the_latest_version(
    database_url: str, raw: Engine
) -> None:
    store = Store(database_url)
    store.open()
    store.close()
    store.open()  # a second start finds it current
    store.close()
    assert _versions(raw) == [migrations.latest()]
    assert {"builds", "logs", "tokens", "sessions"} <= set(inspect(raw).get_table_names())


def test_a_database_made_before_versions_is_version_1_and_keeps_its_data(
    database_url: str, raw: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the oldest pf wrote: builds and logs, no tokens, no version.
    metadata.create_all(raw, tables=[builds, logs])
    with raw.begin() as conn:
        conn.execute(builds.insert().values(_row("old").values()))

    def add_note(conn: Connection) -> None:
        conn.exec_driver_sql("ALTER TABLE builds ADD COLUMN note VARCHAR(32)")

    monkeypatch.setattr(migrations, "STEPS", [add_note])
    store = Store(database_url)
    store.open()
    try:
        assert store.get("old") == _row("old")
    finally:
        store.close()
    assert _versions(raw) == [2]
    assert "note" in {c["name"] for c in inspect(raw).get_columns("builds")}
    assert {"tokens", "sessions"} <= set(inspect(raw).get_table_names())


def test_a_failing_step_leaves_the_database_as_it_was(
    database_url: str, raw: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "STEPS", [])
    first = Store(database_url)
    first.open()
    first.close()

    def half_done(conn: Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE scratch (x INTEGER)")
        raise StoreError("step failed")

    monkeypatch.setattr(migrations, "STEPS", [half_done])
    with pytest.raises(StoreError, match="step failed"):
        Store(database_url).open()
    assert _versions(raw) == [1]
    assert "scratch" not in inspect(raw).get_table_names()


def test_a_database_newer_than_this_pf_is_refused_in_one_line(
    database_url: str, raw: Engine
) -> None:
    store = Store(database_url)
    store.open()
    store.close()
    with raw.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = :v"), {"v": migrations.latest() + 1})
    with pytest.raises(StoreError) as raised:
        Store(database_url).open()
    message = str(raised.value)
    assert "newer than this pf" in message and "\n" not in message


_MIGRATE_AT_ONCE = """
import os, sys, time
from pf.store import Store
import pf.store.history
print("ready", flush=True)
go = sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.005)
store = Store(sys.argv[1])
store.open()
store.write([])
store.close()
"""


def test_processes_starting_at_once_migrate_one_schema(
    database_url: str, raw: Engine, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    starting = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE_AT_ONCE, database_url, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    # Each has imported pf and waits at the gate: opened together, they race to migrate.
    for process in starting:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
    go.touch()
    for process in starting:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    assert _versions(raw) == [migrations.latest()]
    # One set of tables: no process made a second one, or half of one.
    names = set(inspect(raw).get_table_names())
    assert {n for n in names if not n.startswith("procrastinate_")} == {
        *metadata.tables,
        "schema_version",
    }
    if raw.dialect.name == "postgresql":
        assert {"procrastinate_jobs", "procrastinate_workers"} <= names


def test_version_1_gains_attempts_the_shared_cache_and_the_job_queue(
    database_url: str, raw: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(migrations, "STEPS", [])
    monkeypatch.setattr(migrations, "_OUTSIDE_METADATA", [])
    with raw.begin() as conn:
        # Version 1's builds table: the current one without ``attempt``.
        metadata.create_all(conn, tables=[logs])
        conn.exec_driver_sql(
            "CREATE TABLE builds (id VARCHAR(128) PRIMARY KEY, kind VARCHAR(16) NOT NULL, "
            "language VARCHAR(32) NOT NULL, target VARCHAR(255) NOT NULL, project VARCHAR(255), "
            "status VARCHAR(16) NOT NULL, progress INTEGER NOT NULL, phase VARCHAR(32), "
            "created_at FLOAT NOT NULL, started_at FLOAT, ended_at FLOAT, duration_ms INTEGER, "
            "error TEXT, cached BOOLEAN NOT NULL, action_key VARCHAR(64), options JSON, "
            "artifacts JSON, timings JSON, diagnostics JSON, task VARCHAR(255), params JSON, "
            "sources JSON)"
        )
        conn.exec_driver_sql(
            "INSERT INTO builds (id, kind, language, target, status, progress, created_at, "
            "cached) VALUES ('old', 'compile', 'c', 'wasm', 'completed', 0, 1.0, false)"
        )
    monkeypatch.undo()
    store = Store(database_url)
    store.open()
    try:
        assert store.get("old") == _row("old")
    finally:
        store.close()
    assert _versions(raw) == [migrations.latest()]
    names = set(inspect(raw).get_table_names())
    assert {"blobs", "actions"} <= names
    assert "attempt" in {c["name"] for c in inspect(raw).get_columns("builds")}
    if raw.dialect.name == "postgresql":
        assert "procrastinate_jobs" in names
