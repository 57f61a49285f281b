"""The compile cache shared through the database, on a real SQLite file and a real
PostgreSQL: blobs and manifests round-trip, eviction keeps the newest within the bound,
and the single-flight lock serialises two holders (PostgreSQL)."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import psycopg

from pf.store import Store
from pf.store.shared import SharedCache


def _file(tmp_path: Path, name: str, data: bytes) -> tuple[str, Path]:
    path = tmp_path / name
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), path


def test_blobs_and_manifests_round_trip(store: Store, tmp_path: Path) -> None:
    shared = SharedCache(store.db, 1 << 20)
    digest, path = _file(tmp_path, "out.wasm", b"\0asm\1\0\0\0")
    assert shared.manifest("k" * 64) is None and shared.blob(digest) is None
    shared.put("k" * 64, b'{"key": "kk"}', [(digest, path)])
    shared.put("j" * 64, b'{"key": "jj"}', [(digest, path)])  # the blob is stored once
    assert shared.manifest("k" * 64) == b'{"key": "kk"}'
    assert shared.blob(digest) == b"\0asm\1\0\0\0"
    assert shared.usage() == 8
    shared.drop("k" * 64)
    assert shared.manifest("k" * 64) is None and shared.manifest("j" * 64) is not None


def test_eviction_keeps_the_most_recently_used_within_the_bound(
    store: Store, tmp_path: Path
) -> None:
    shared = SharedCache(store.db, 250)
    digests = []
    for i in range(3):
        digest, path = _file(tmp_path, f"{i}", bytes([i]) * 100)
        shared.put(f"{i}" * 64, b"{}", [(digest, path)])
        digests.append(digest)
    shared.evict()
    assert shared.usage() <= 250
    assert shared.blob(digests[0]) is None
    assert shared.blob(digests[2]) is not None


def test_the_single_flight_lock_is_held_by_one_at_a_time(pg_url: str) -> None:
    store = Store(pg_url)
    store.open()
    try:
        shared = SharedCache(store.db, 1 << 20)
        key = "ab" * 32
        inside = threading.Event()
        order: list[str] = []

        def second() -> None:
            inside.wait(10)
            with shared.flight(key):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        with shared.flight(key):
            inside.set()
            # The second holder waits for the lock in PostgreSQL, granted to nobody else.
            deadline = time.monotonic() + 30
            while _waiting(pg_url) == 0:
                assert time.monotonic() < deadline, "the second holder never asked"
                time.sleep(0.01)
            order.append("first")
        thread.join(10)
        assert order == ["first", "second"]
    finally:
        store.close()


def _waiting(url: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        ).fetchone()
    return int(found[0]) if found else 0
