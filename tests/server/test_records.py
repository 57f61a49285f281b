"""One build record: each field of store.record.BuildRecord is a column of the real
database, goes through a Job and back, and is shown by the API (its JSON and the
published OpenAPI schema) or deliberately hidden. A field added in one place and not the
others fails here."""

from __future__ import annotations

from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import jsonschema_rs
from sqlalchemy import create_engine, inspect

from pf.engine.jobs import Job
from pf.server import records
from pf.server.openapi import DOCUMENT
from pf.store import BlobStore, Store
from pf.store.record import BuildRecord

# Every field away from its default, so that each one is seen to travel.
TASK = BuildRecord(
    id="task-web:build-1732838400123-0007a1b2c3",
    kind="task",
    language="task",
    target="web:build",
    project="demo",
    status="running",
    progress=50,
    phase="compile",
    eta=1.5,
    created_at=1732838400.123,
    started_at=1732838401.5,
    ended_at=1732838402.25,
    duration_ms=750,
    error="exited with code 1",
    cached=True,
    action_key="a" * 64,
    options={"opt_level": "2"},
    artifacts=({"name": "dir/a b#.wasm", "kind": "wasm", "digest": "d" * 64, "size": 8},),
    timings={"queued": 0.0125, "compile": 0.5},
    diagnostics=({"file": "a.c", "line": 1, "col": 2, "severity": "error", "message": "x"},),
    task="web:build",
    params={"mode": "release"},
    sources={"a.c": "int x;"},
    attempt=2,
    client="token:ci",
)
NAMES = [f.name for f in fields(BuildRecord)]


def _with(**changed: Any) -> BuildRecord:
    return BuildRecord(**{**{n: getattr(TASK, n) for n in NAMES}, **changed})


def _default(name: str) -> Any:
    found = next(f for f in fields(BuildRecord) if f.name == name)
    return found.default_factory() if found.default_factory is not MISSING else found.default


def test_the_sample_sets_every_field() -> None:
    assert [n for n in NAMES if getattr(TASK, n) == _default(n)] == []


def test_every_field_but_eta_is_a_column_of_the_database_in_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pf.db'}"
    store = Store(url)
    store.open()
    store.close()
    columns = [c["name"] for c in inspect(create_engine(url)).get_columns("builds")]
    assert columns == [n for n in NAMES if n != "eta"]


def test_a_record_goes_through_a_job_and_the_store_unchanged(
    database_url: str, tmp_path: Path
) -> None:
    # Queued: a finished build's record drops its inline sources and its eta.
    queued = _with(status="queued")
    job = Job.from_record(queued, BlobStore(tmp_path / "blobs"))
    assert job.record() == queued
    store = Store(database_url)
    store.open()
    try:
        store.write([job.record()])
        stored = store.get(queued.id)
    finally:
        store.close()
    assert stored == _with(status="queued", eta=None)
    assert BuildRecord.from_values(queued.values()) == stored


def test_every_field_is_shown_or_hidden_and_the_schema_is_the_json() -> None:
    shown = [s.field for s in records.SHOWN]
    assert sorted(shown + list(records.HIDDEN)) == sorted(NAMES)
    assert len(set(shown)) == len(shown) and not set(shown) & set(records.HIDDEN)
    published = DOCUMENT["components"]["schemas"]["Build"]
    keys = [s.key for s in records.SHOWN]
    assert list(published["properties"]) == keys
    task = records.build_json(TASK)
    assert list(task) == keys
    compile_ = records.build_json(_with(kind="compile"))
    assert list(compile_) == [s.key for s in records.SHOWN if not s.tasks_only]
    # Nothing hidden leaks under its own name or a camelCase one.
    for name in records.HIDDEN:
        camel = name.split("_")[0] + "".join(p.title() for p in name.split("_")[1:])
        assert name not in task and camel not in task
    # Every answer validates against the published schema, closed to other keys.
    closed = {**published, "additionalProperties": False}
    validator = jsonschema_rs.Draft202012Validator(
        {**closed, "components": {"schemas": DOCUMENT["components"]["schemas"]}}
    )
    for answer in (task, compile_):
        assert validator.is_valid(answer), list(validator.iter_errors(answer))


def test_the_json_of_a_build_as_clients_read_it() -> None:
    answer = records.build_json(TASK)
    assert answer["buildId"] == TASK.id and answer["createdTime"] == "2024-11-29T00:00:00.123Z"
    assert (answer["startTime"], answer["endTime"]) == (
        "2024-11-29T00:00:01.500Z",
        "2024-11-29T00:00:02.250Z",
    )
    assert answer["duration"] == 750 and answer["timings"] == {"queued": 12.5, "compile": 500.0}
    (artifact,) = answer["artifacts"]
    assert artifact == {
        "path": "dir/a b#.wasm",
        "kind": "wasm",
        "size": 8,
        "digest": "d" * 64,
        "url": "/api/builds/task-web%3Abuild-1732838400123-0007a1b2c3/artifacts/dir/a%20b%23.wasm",
    }
    assert answer["task"] == "web:build" and answer["params"] == {"mode": "release"}


def test_a_finished_build_is_written_once_while_its_record_is_the_same() -> None:
    write = records.BuildJson(limit=2)
    running = _with(status="running")
    assert write(running) == records.build_json(running)
    assert write(running) is not write(running)  # a live build changes: written each time
    done = _with(status="completed")
    first = write(done)
    assert write(done) is first
    again = _with(status="completed")  # read back from the store: a new record
    kept = write(again)
    assert kept is not first and kept == first and write(again) is kept
    write(_with(status="failed", id="b"))
    assert write(again) is kept
    write(_with(status="failed", id="c"))
    write(_with(status="failed", id="d"))
    assert write(again) is not kept  # beyond the limit, the least recent left
