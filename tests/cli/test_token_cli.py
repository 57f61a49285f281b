"""``pf token`` as users run it: the real CLI on a real SQLite file (``.pf/pf.db``)."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from pf.store.schema import builds, logs


def pf(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pf", "token", *args], cwd=cwd, capture_output=True, text=True
    )


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PF_CACHE_DIR", str(tmp_path / ".pf" / "cache"))
    return tmp_path


def test_create_prints_the_token_once_and_stores_its_hash(work: Path) -> None:
    made = pf(work, "create", "ci", "--scope", "build")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert re.fullmatch(r"pf_[A-Za-z0-9_-]{43}", token)
    assert made.stdout == token + "\n"
    assert "shown only this once" in made.stderr
    stored = b"".join(p.read_bytes() for p in (work / ".pf").glob("pf.db*"))
    assert token.encode() not in stored and token[3:].encode() not in stored
    listed = pf(work, "list")
    assert listed.returncode == 0
    assert re.search(r"^ci\s+build\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+never$", listed.stdout, re.M)
    assert token not in listed.stdout + listed.stderr


def test_duplicate_name_and_unknown_scope_are_usage_errors(work: Path) -> None:
    assert pf(work, "create", "ci", "--scope", "read").returncode == 0
    again = pf(work, "create", "ci", "--scope", "admin")
    assert again.returncode == 2
    assert "a token named 'ci' already exists" in again.stderr
    assert again.stdout == ""
    scope = pf(work, "create", "x", "--scope", "root")
    assert scope.returncode == 2
    assert "'read', 'build', 'admin'" in scope.stderr
    name = pf(work, "create", "no spaces", "--scope", "read")
    assert name.returncode == 2 and "invalid token name" in name.stderr
    missing = pf(work, "create", "y")
    assert missing.returncode == 2 and "--scope" in missing.stderr


def test_revoke(work: Path) -> None:
    pf(work, "create", "alice", "--scope", "admin")
    pf(work, "create", "bob", "--scope", "read")
    assert pf(work, "revoke", "alice").returncode == 0
    listed = pf(work, "list").stdout
    assert "alice" not in listed and "bob" in listed
    unknown = pf(work, "revoke", "alice")
    assert unknown.returncode == 1
    assert "no token named 'alice'" in unknown.stderr


def test_a_database_from_before_tokens_keeps_working(work: Path) -> None:
    db = work / ".pf" / "pf.db"
    db.parent.mkdir(parents=True)
    engine = create_engine(f"sqlite:///{db}")
    builds.metadata.create_all(engine, tables=[builds, logs])
    with engine.begin() as conn:
        conn.execute(
            builds.insert().values(
                id="old-1",
                kind="compile",
                language="c",
                target="wasm",
                status="completed",
                created_at=1.0,
            )
        )
    engine.dispose()
    assert pf(work, "list").stdout.startswith("no tokens")
    assert pf(work, "create", "ci", "--scope", "read").returncode == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM builds").fetchall() == [("old-1",)]
        assert conn.execute("SELECT name, scope FROM tokens").fetchall() == [("ci", "read")]
