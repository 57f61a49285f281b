"""Small blobs kept in the cache's database: a compile of a small module creates no file
in the cache, its bytes come back with every hit, are written to a file only when
something asks for one, are verified like a file's, and count towards the bound. Real
compiles (the resident WAT assembler), real cache directories and SQLite files, and a
real PostgreSQL for the shared tier.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from pf.config import load_settings
from pf.engine import ActionCache, compile_sources
from pf.engine.cache import usage
from pf.engine.manifests import INLINE_MAX
from pf.store import BlobStore, Store, digest_bytes
from pf.store.shared import SharedCache
from pf.toolchains import CompileRequest, SourceFile

ADD_WAT = b"""(module
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
"""


def _request(body: bytes = ADD_WAT) -> CompileRequest:
    return CompileRequest("wat", "wasm", (SourceFile("add.wat", body),))


def _cas_files(cache_dir: Path) -> list[Path]:
    return sorted(p for p in (cache_dir / "cas").glob("*/*") if p.is_file())


def _kept(cache_dir: Path) -> dict[str, bytes]:
    with sqlite3.connect(cache_dir / "manifests.db") as db:
        return {
            digest: bytes(data) for digest, data in db.execute("SELECT digest, data FROM blobs")
        }


def test_a_small_module_is_kept_in_the_database_and_makes_no_file() -> None:
    settings = load_settings()
    built = compile_sources(_request(), settings)
    (artifact,) = built.artifacts
    assert artifact.read_bytes()[:4] == b"\0asm" and artifact.size <= INLINE_MAX
    assert _cas_files(settings.cache_dir) == []
    assert _kept(settings.cache_dir) == {artifact.digest: artifact.read_bytes()}
    hit = compile_sources(_request(), settings)
    assert hit.cached and hit.artifacts[0].data == artifact.data
    counted = usage(settings.cache_dir)
    assert (counted.entries, counted.blobs) == (1, 1)
    assert counted.bytes > artifact.size


def test_a_kept_blob_becomes_a_file_when_asked_for_one_and_exports(tmp_path: Path) -> None:
    settings = load_settings()
    built = compile_sources(_request(), settings)
    (artifact,) = built.artifacts
    path = ActionCache.for_settings(settings).fetch(artifact.digest, artifact.size)
    assert path == artifact.path and path.read_bytes() == artifact.data
    (written,) = built.export(tmp_path / "out")
    assert written.read_bytes() == artifact.data


def test_a_damaged_kept_blob_is_never_served_and_is_rebuilt() -> None:
    settings = load_settings()
    first = compile_sources(_request(), settings)
    (artifact,) = first.artifacts
    with sqlite3.connect(settings.cache_dir / "manifests.db") as db:
        db.execute(
            "UPDATE blobs SET data = ? WHERE digest = ?",
            (b"\0asm" + bytes(artifact.size - 4), artifact.digest),
        )
    cache = ActionCache.for_settings(settings)
    assert cache.fetch(artifact.digest, artifact.size) is None
    assert cache.lookup(first.key) is None
    again = compile_sources(_request(), settings)
    assert not again.cached and again.artifacts[0].data == artifact.data
    assert _kept(settings.cache_dir) == {artifact.digest: artifact.data}


def test_a_larger_output_stays_a_file(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path / "cache", max_bytes=10**9)
    large = b"\0asm" + bytes(range(256)) * (INLINE_MAX // 256 + 1)
    entry = cache.store("a" * 64, [("big.wasm", "wasm", large)], [], [], None, 0.0)
    (artifact,) = entry.artifacts
    assert artifact.data is None and artifact.path.read_bytes() == large
    assert _kept(tmp_path / "cache") == {}
    found = cache.lookup("a" * 64)
    assert found is not None and found.artifacts[0].data is None


def test_a_small_blob_an_older_pf_kept_as_a_file_stays_a_hit(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = ActionCache(root, max_bytes=10**9)
    data = b"\0asm\x01\0\0\0"
    entry = cache.store("b" * 64, [("add.wasm", "wasm", data)], [], [], None, 0.0)
    # As an older pf left it: the blob a file, no row.
    BlobStore(root / "cas").put_bytes(digest_bytes(data), data)
    with sqlite3.connect(root / "manifests.db") as db:
        db.execute("DELETE FROM blobs")
    found = cache.lookup("b" * 64)
    assert found is not None and found.artifacts == entry.artifacts
    (artifact,) = found.artifacts
    assert artifact.data is None and artifact.read_bytes() == data


def test_kept_blobs_count_towards_the_bound_and_go_least_recently_used_first(
    tmp_path: Path,
) -> None:
    root = tmp_path / "cache"
    cache = ActionCache(root, max_bytes=10**9)
    keys = [f"{i:064x}" for i in range(6)]
    for i, key in enumerate(keys):
        cache.store(key, [("out.wasm", "wasm", bytes([i]) * 4000)], [], [], None, 0.0)
    # One entry is a 4,000-byte kept blob and a manifest of about 200 bytes.
    assert 6 * 4000 < usage(root).bytes < 6 * 4400
    with sqlite3.connect(root / "manifests.db") as db:
        db.execute("UPDATE manifests SET used = used - 3600")
        db.execute("UPDATE blobs SET used = used - 3600")
    # Used again an hour later: the entry and its blob are the newest.
    assert cache.lookup(keys[0]) is not None
    small = ActionCache(root, max_bytes=2 * 4400)
    small.evict()
    assert usage(root).bytes <= 2 * 4400
    assert small.lookup(keys[0]) is not None
    assert sum(small.lookup(key) is not None for key in keys) <= 2
    assert _cas_files(root) == []


def test_a_kept_blob_goes_through_the_shared_tier_to_another_cache_directory(
    pg_url: str, tmp_path: Path
) -> None:
    store = Store(pg_url)
    store.open()
    try:
        shared = SharedCache(store.db, 1 << 20)
        settings = load_settings()
        worker = ActionCache(tmp_path / "worker", 10**9, shared)
        built = compile_sources(_request(), settings, cache=worker)
        (artifact,) = built.artifacts
        assert shared.blob(artifact.digest) == artifact.data
        # Another machine's cache: a local miss, a hit from the shared tier, kept there
        # as a row too; the API process's copy for serving is a file.
        other = ActionCache(tmp_path / "other", 10**9, shared)
        found = other.lookup(built.key)
        assert found is not None and found.artifacts[0].data == artifact.data
        assert _kept(tmp_path / "other") == {artifact.digest: artifact.data}
        assert _cas_files(tmp_path / "other") == []
        api = ActionCache(tmp_path / "api", 10**9, shared)
        path = api.fetch(artifact.digest, artifact.size)
        assert path is not None and path.read_bytes() == artifact.data
    finally:
        store.close()
