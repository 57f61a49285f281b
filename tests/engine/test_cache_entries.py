"""What the cache trusts: manifests are validated on read, a read-only cache still
serves hits, and files are created with the modes the umask allows. Real clang compiles
and a real cache directory; the read-only cache is a read-only bind mount in a mount
namespace of its own, since the tests run as root, whom file modes do not stop.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pf.config import load_settings
from pf.engine import ActionCache, compile_sources
from pf.engine.manifests import Manifests
from pf.toolchains import CompileRequest, SourceFile

ADD_C = b"int add(int a, int b) { return a + b; }\n"


def _request(source: bytes = ADD_C) -> CompileRequest:
    return CompileRequest("c", "wasm", (SourceFile("add.c", source),))


def _manifests() -> Manifests:
    return Manifests(load_settings().cache_dir)


def _rewrite(key: str, data: object) -> None:
    _manifests().put(key, json.dumps(data).encode())


def _good_manifest(key: str) -> dict[str, object]:
    found = _manifests().get(key)
    assert found is not None
    data = json.loads(found[0])
    assert isinstance(data, dict)
    return data


def _variants(good: dict[str, object]) -> list[object]:
    output = good["outputs"][0]  # type: ignore[index]
    return [
        {"key": 5},
        [],
        None,
        {k: v for k, v in good.items() if k != "diagnostics"},
        {**good, "outputs": [{**output, "size": "107"}]},
        {**good, "outputs": [{**output, "digest": "not-a-digest"}]},
        {**good, "log": [["stdout"]]},
        {**good, "diagnostics": [{"file": "add.c"}]},
        {**good, "deps": [["relative/path.h", "0" * 64]]},
        {**good, "key": "0" * 64},
    ]


def test_a_manifest_of_the_wrong_shape_is_a_miss_and_is_replaced(counted: Path) -> None:
    settings = load_settings()
    first = compile_sources(_request(), settings)
    good = _good_manifest(first.key)
    for bad in _variants(good):
        _rewrite(first.key, bad)
        starts = len(counted.read_text().splitlines())
        again = compile_sources(_request(), settings)
        assert not again.cached, bad
        assert len(counted.read_text().splitlines()) > starts
        assert _good_manifest(first.key)["outputs"] == good["outputs"]
        assert compile_sources(_request(), settings).cached


@pytest.mark.parametrize("name", ["../../evil.wasm", "/tmp/evil.wasm", "..", "", "a/b.wasm"])
def test_an_output_name_that_is_not_a_plain_file_name_is_never_exported(
    name: str, counted: Path, tmp_path: Path
) -> None:
    source = tmp_path / "add.c"
    source.write_bytes(ADD_C)
    out = tmp_path / "deep" / "out"
    argv = [sys.executable, "-m", "pf", "compile", str(source), "-o", str(out), "--json"]
    first = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    key = json.loads(first.stdout)["key"]
    good = _good_manifest(key)
    output = good["outputs"][0]  # type: ignore[index]
    _rewrite(key, {**good, "outputs": [{**output, "name": name}]})
    shutil.rmtree(out)
    again = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["cached"] is False
    assert sorted(p.name for p in out.iterdir()) == ["add.wasm"]
    assert not (tmp_path / "evil.wasm").exists()
    assert not Path("/tmp/evil.wasm").exists()


def test_cache_files_take_the_modes_the_umask_allows(counted: Path) -> None:
    previous = os.umask(0o022)
    try:
        (artifact,) = compile_sources(_request(), load_settings()).artifacts
        # A blob is a file once something asks for one (the database keeps a small one).
        blob = ActionCache.for_settings(load_settings()).fetch(artifact.digest, artifact.size)
    finally:
        os.umask(previous)
    cache_dir = load_settings().cache_dir
    assert stat.S_IMODE((cache_dir / "manifests.db").stat().st_mode) == 0o644
    assert blob is not None and stat.S_IMODE(blob.stat().st_mode) & 0o444 == 0o444
    assert stat.S_IMODE((cache_dir / "locks" / "evict.lock").stat().st_mode) == 0o644
    for lock in (cache_dir / "locks").glob("*.lock"):
        assert stat.S_IMODE(lock.stat().st_mode) & 0o044 == 0o044


def _read_only(cache_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with ``cache_dir`` mounted read-only (a private mount namespace)."""
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
    unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
    return subprocess.run(
        [*unshare, str(cache_dir), *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def read_only_ok(tmp_path: Path) -> None:
    probe = _read_only(tmp_path, "true")
    if probe.returncode != 0:
        pytest.skip(f"no read-only bind mount here: {probe.stderr.strip()}")


def test_a_read_only_cache_serves_hits_and_refuses_misses_clearly(
    counted: Path, tmp_path: Path, read_only_ok: None
) -> None:
    source = tmp_path / "add.c"
    source.write_bytes(ADD_C)
    out = tmp_path / "out"
    pf = [sys.executable, "-m", "pf", "compile"]
    first = subprocess.run(
        [*pf, str(source), "-o", str(out)], capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stderr
    cache_dir = load_settings().cache_dir
    starts = len(counted.read_text().splitlines())

    hit = _read_only(cache_dir, *pf, str(source), "-o", str(out))
    assert hit.returncode == 0, hit.stderr
    assert "cache hit" in hit.stdout
    assert (out / "add.wasm").read_bytes()[:4] == b"\0asm"

    other = tmp_path / "sub.c"
    other.write_bytes(b"int sub(int a, int b) { return a - b; }\n")
    miss = _read_only(cache_dir, *pf, str(other), "-o", str(out))
    assert miss.returncode != 0
    assert "Traceback" not in miss.stderr
    assert f"cannot write to the cache directory {cache_dir}" in miss.stderr
    assert "PF_CACHE_DIR" in miss.stderr
    assert len(counted.read_text().splitlines()) == starts


def _store_one(args: tuple[str, int]) -> str | None:
    root, n = args
    try:
        Manifests(Path(root)).put(f"{n:064x}", b"{}")
    except Exception as exc:  # reported to the test, which names it
        return repr(exc)
    return None


def test_processes_making_a_new_manifests_file_at_once_all_store(tmp_path: Path) -> None:
    # Each reads the new file, then needs it alone to switch it to WAL: SQLite refuses
    # all but one of them at once (no waiting), and those must try again, not fail.
    with multiprocessing.get_context("fork").Pool(6) as pool:
        for attempt in range(60):
            root = tmp_path / f"cache{attempt}"
            root.mkdir()
            failed = [f for f in pool.map(_store_one, [(str(root), n) for n in range(6)], 1) if f]
            assert not failed, f"attempt {attempt}: {failed[0]}"
            assert len(list(Manifests(root).entries())) == 6
