"""Faults pf serve must report plainly: a full disk, a database it cannot use, a compile
that would hold a build thread past PF_API_BUILD_TIMEOUT."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import DEMOS, Server, unique_c, wait_for, wait_ready

DEADLINE = 30.0


def _compile(http: httpx.Client, files: dict[str, str]) -> str:
    answer = http.post("/api/compile", json={"language": "c", "target": "llvm", "files": files})
    assert answer.status_code == 202, answer.text
    build_id: str = answer.json()["buildId"]
    return build_id


# A real small filesystem --------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs mounted for this test (needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _fill(directory: Path) -> Path:
    """Write a file until the filesystem has no byte left."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    return filler


def test_a_full_disk_fails_builds_plainly_and_damages_nothing(
    make_server: type[Server], tmp_path: Path, small_disk: Path
) -> None:
    state = small_disk / ".pf"
    server = make_server(
        tmp_path / "work",
        env={
            "PF_CACHE_DIR": str(state / "cache"),
            "PF_MIN_FREE_DISK": "8M",
            "PF_CCACHE": "0",
            "PF_RATE_LIMIT": "0",
        },
    ).start()
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as http:
        assert wait_ready(http, True, DEADLINE)["disk"] == "ok"
        before = _compile(http, unique_c("before"))
        record = wait_for(http, before)
        assert record["status"] == "completed", record
        artifact = record["artifacts"][0]  # type: ignore[index]
        url = f"/api/builds/{before}/artifacts/{artifact['path']}"
        kept = http.get(url).content

        filler = _fill(small_disk)
        body = wait_ready(http, False, DEADLINE)
        reason = str(body["reason"])
        assert "MiB free on" in reason and "PF_MIN_FREE_DISK=8M" in reason, reason
        assert body["disk"] == "low"

        failed = wait_for(http, _compile(http, unique_c("full")))
        assert failed["status"] == "failed"
        assert "no space left on device" in str(failed["error"]).lower(), failed
        assert "internal error" not in str(failed["error"])
        # What was stored before still reads back, whole.
        assert http.get(f"/api/builds/{before}").json()["status"] == "completed"
        again = http.get(url)
        assert again.status_code == 200 and again.content == kept
        assert hashlib.sha256(again.content).hexdigest() == artifact["digest"]

        filler.unlink()
        wait_ready(http, True, DEADLINE)
        after = wait_for(http, _compile(http, unique_c("after")))
        assert after["status"] == "completed", after
    server.stop()  # the writer checkpoints and closes the database

    with contextlib.closing(sqlite3.connect(state / "pf.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        stored = {row[0] for row in db.execute("SELECT id FROM builds")}
    assert {before, after["buildId"]} <= stored
    blobs = [p for p in (state / "cache" / "cas").rglob("*") if p.is_file()]
    assert blobs
    for blob in blobs:
        assert not blob.name.startswith(".tmp-"), f"a half-written blob was left: {blob}"
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name


# A database pf cannot use -------------------------------------------------------------


def _garbage(db: Path) -> None:
    db.write_bytes(os.urandom(8192))


def _directory(db: Path) -> None:
    db.mkdir()


def _truncated(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE filler (x TEXT)")
        conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 1000,)] * 200)
        conn.commit()
    with db.open("r+b") as handle:
        handle.truncate(1500)


@pytest.mark.parametrize("damage", [_garbage, _directory, _truncated])
def test_a_database_pf_cannot_use_is_one_line(tmp_path: Path, damage: object) -> None:
    work = tmp_path / "work"
    (work / ".pf").mkdir(parents=True)
    db = work / ".pf" / "pf.db"
    assert callable(damage)
    damage(db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PF_")}
    env["PF_CACHE_DIR"] = str(work / ".pf" / "cache")
    argv = [sys.executable, "-m", "pf", "serve", "--port", "0"]
    done = subprocess.run(
        [*argv, "--projects", str(DEMOS), "--root", str(work)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(db) in lines[0] and "is not a readable SQLite database" in lines[0]
    assert "move it aside" in lines[0]


# API compiles have their own time limit ------------------------------------------------

# Each level includes the next twice: 2^40 inclusions, each cheap, none ever the last.
BOMB = {
    "main.c": '#include "bomb.h"\nint main(void) { return 0; }\n',
    "bomb.h": '#if __INCLUDE_LEVEL__ < 40\n#include "bomb.h"\n#include "bomb.h"\n#endif\n',
}


def test_an_api_compile_gets_the_api_build_timeout(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(
        tmp_path / "work",
        env={"PF_API_BUILD_TIMEOUT": "2", "PF_BUILD_TIMEOUT": "600", "PF_CCACHE": "0"},
    ).start()
    with httpx.Client(base_url=server.url, timeout=DEADLINE) as http:
        record = wait_for(http, _compile(http, BOMB), timeout=120)
    assert record["status"] == "failed"
    assert "longer than 2 s" in str(record["error"]), record
