"""The cache's bounds, through real compiles and a real cache directory: captured logs,
the size limit (manifests count, small limits still deliver), and scratch dirs left by
killed builds.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pf.config import load_settings
from pf.engine import ActionCache, compile_sources
from pf.engine.cache import usage
from pf.engine.manifests import INLINE_MAX, Manifests
from pf.sandbox import truncation_marker
from pf.toolchains import CompileRequest, SourceFile

ADD_C = b"int add(int a, int b) { return a + b; }\n"
LIB_RS = b'#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 { a + b }\n'
HELLO_F90 = b'program hello\n  print *, "hello", 1\nend program hello\n'


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)
    return str(path)


def _pf(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pf", *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _manifests(cache_dir: Path) -> list[bytes]:
    """Every manifest in the cache at ``cache_dir``, by key."""
    store = Manifests(cache_dir)
    found = [store.get(key) for _, _, key in sorted(store.entries(), key=lambda e: e[2])]
    return [entry[0] for entry in found if entry is not None]


def _cache_bytes(cache_dir: Path) -> int:
    return usage(cache_dir).bytes


@pytest.mark.parametrize(
    "flood",
    [
        "yes 'noise noise noise noise' | head -c 5000000 >&2",
        # One line of NULs: every one would cost six bytes of JSON in the manifest.
        "head -c 5000000 /dev/zero",
    ],
    ids=["lines", "one-line-of-nuls"],
)
def test_a_flooding_compiler_that_succeeds_keeps_a_capped_log(
    flood: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clang = _script(
        tmp_path / "clang",
        f'[ "$1" = --version ] || {flood}\nexec /usr/bin/clang-14 "$@"\n',
    )
    monkeypatch.setenv("PF_TOOL_CLANG", clang)
    monkeypatch.setenv("PF_MAX_BUFFER", "64K")
    monkeypatch.setenv("PF_CCACHE", "0")
    # The wrapper lives in tmp_path, which the sandbox's uid cannot enter.
    monkeypatch.setenv("PF_SANDBOX", "off")
    settings = load_settings()
    streamed: list[tuple[str, str]] = []
    request = CompileRequest("c", "wasm", (SourceFile("add.c", ADD_C),))
    built = compile_sources(request, settings, on_line=lambda s, t: streamed.append((s, t)))
    marker = truncation_marker(64 * 1024)
    assert built.log[-1][1] == marker
    assert sum(len(text) for _, text in built.log) < 3 * 64 * 1024
    # Listeners still saw the whole flood, line by line.
    assert sum(len(text) + 1 for _, text in streamed) >= 5_000_000
    (manifest,) = _manifests(settings.cache_dir)
    assert len(manifest) < 1_000_000
    hit = compile_sources(request, settings)
    assert hit.cached and hit.log == built.log
    assert hit.artifacts[0].read_bytes()[:4] == b"\0asm"


def test_manifests_count_towards_the_bound(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path / "cache", max_bytes=30_000)
    output = tmp_path / "out.wasm"
    output.write_bytes(b"\0asm" + bytes(96))
    log = [("stderr", "warning: " + "x" * 100)] * 100  # about 12 KB of manifest each
    keys = [f"{i:064x}" for i in range(6)]
    for i, key in enumerate(keys):
        output.write_bytes(b"\0asm" + bytes([i]) * 96)
        cache.store(key, [("out.wasm", "wasm", output)], log, [], None, 0.0)
        assert _cache_bytes(tmp_path / "cache") <= 30_000
    assert cache.lookup(keys[-1]) is not None
    assert cache.lookup(keys[0]) is None


def test_eviction_needs_no_manifest_to_be_readable(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = ActionCache(root, max_bytes=10**9)
    output = tmp_path / "out.wasm"
    output.write_bytes(b"\0asm")
    cache.store("a" * 64, [("out.wasm", "wasm", output)], [], [], None, 0.0)
    kept = _cache_bytes(root)
    junk = "b" * 64
    cache.manifests.put(junk, b"\xff not json" * 100)
    with sqlite3.connect(root / "manifests.db") as db:
        db.execute("UPDATE manifests SET used = 1 WHERE key = ?", (junk,))
    small = ActionCache(root, max_bytes=kept)
    small.evict()
    assert small.manifests.get(junk) is None
    assert small.lookup("a" * 64) is not None


@pytest.mark.parametrize(
    ("source", "language", "target", "bound", "output"),
    [
        ("add.c", "c", "wasm", "50", "add.wasm"),
        ("lib.rs", "rust", "asm", "100K", "lib.mjs"),
        ("hello.f90", "fortran", "wasm", "1K", "hello.wasm"),
        ("hello.f90", "fortran", "wasm", "20K", "hello.wasm"),
    ],
)
def test_a_cache_smaller_than_one_result_still_delivers_it(
    source: str, language: str, target: str, bound: str, output: str, tmp_path: Path
) -> None:
    contents = {"c": ADD_C, "rust": LIB_RS, "fortran": HELLO_F90}
    path = tmp_path / source
    path.write_bytes(contents[language])
    out = tmp_path / "out"
    env = {"PF_CACHE_MAX_BYTES": bound}
    for _ in range(2):
        done = _pf("compile", str(path), "--target", target, "-o", str(out), cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stderr
        produced = (out / output).read_bytes()
        assert produced[:4] == b"\0asm" if target == "wasm" else len(produced) > 1000
        (out / output).unlink()


def test_scratch_dirs_of_killed_builds_are_removed_once_stale(tmp_path: Path) -> None:
    pidfile = tmp_path / "compiler.pid"
    hang = _script(
        tmp_path / "clang",
        'if [ "$1" = --version ]; then echo "clang version 14.0.6"; exit 0; fi\n'
        f"sleep 300 & echo $! > {pidfile}; wait\n",
    )
    source = tmp_path / "add.c"
    source.write_bytes(ADD_C)
    # Unconfined: the cache's own scratch dirs are what this is about, and the wrapper
    # writes its pid outside the scratch dir.
    scratch = tmp_path / "scratch"
    env = {
        **os.environ,
        "PF_TOOL_CLANG": hang,
        "PF_CCACHE": "0",
        "PF_SANDBOX": "off",
        "PF_SCRATCH_DIR": str(scratch),
    }
    pf = subprocess.Popen(
        [sys.executable, "-m", "pf", "compile", str(source)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            time.sleep(0.05)
        pf.send_signal(signal.SIGKILL)
        pf.wait(30)
    finally:
        if pidfile.exists() and pidfile.read_text().strip():
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    (left,) = list(scratch.iterdir())
    settings = load_settings(environ=env)
    cache = ActionCache.for_settings(settings)
    with cache.scratch() as live:
        assert live.parent == scratch
        # Both look stale by age; only the killed build's dir holds no lock.
        for path in (left, live):
            os.utime(path, (time.time() - 7200, time.time() - 7200))
        cache.evict()
        assert not left.exists()
        assert live.exists()
    # A fresh one is left alone even without a lock: its build may not have locked it yet.
    fresh = scratch / "build-fresh"
    fresh.mkdir()
    cache.evict()
    assert fresh.exists()


def test_a_store_measures_the_cache_and_sweeps_stale_scratch_dirs(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = ActionCache(root, max_bytes=10)
    stale = root / "tmp" / "build-killed"
    (stale / "obj").mkdir(parents=True)
    (stale / "obj" / "big.o").write_bytes(bytes(10_000))
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    output = tmp_path / "out.wasm"
    output.write_bytes(b"\0asm")
    entry = cache.store("c" * 64, [("out.wasm", "wasm", output)], [], [], None, 0.0)
    assert not stale.exists()
    assert entry.artifacts[0].read_bytes() == b"\0asm"
    assert json.loads(_manifests(root)[0])["key"] == "c" * 64


def test_unconfined_scratch_dirs_go_to_a_tmpfs_with_room(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    room = os.statvfs(shm).f_bavail * os.statvfs(shm).f_frsize
    if not any(line.split()[1:3] == [str(shm), "tmpfs"] for line in mounts) or room < 2**30:
        pytest.skip("no tmpfs with 1 GiB free at /dev/shm")
    environ = {**os.environ, "PF_CACHE_DIR": str(tmp_path / "cache")}
    environ.pop("PF_SCRATCH_DIR", None)
    settings = load_settings(environ=environ)
    cache = ActionCache.for_settings(settings)
    with cache.scratch() as scratch:
        assert scratch.parent == shm / f"pf-{os.getuid()}"
        assert scratch.stat().st_mode & 0o077 == 0
    scratch.rmdir()
    request = CompileRequest("c", "wasm", (SourceFile("add.c", ADD_C),))
    off = load_settings(environ={**environ, "PF_SANDBOX": "off"})
    built = compile_sources(request, off, cache=cache)
    assert built.artifacts[0].read_bytes()[:4] == b"\0asm"
    assert built.artifacts[0].path.is_relative_to(tmp_path / "cache")


def test_manifests_an_older_pf_kept_as_files_stay_hits(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    cache = ActionCache(root, max_bytes=10**9)
    output = tmp_path / "out.wasm"
    # Larger than a blob the database keeps: an older pf kept every blob as a file.
    output.write_bytes(b"\0asm" + bytes(INLINE_MAX))
    stored = cache.store("d" * 64, [("out.wasm", "wasm", output)], [], [], None, 0.0)
    (raw,) = _manifests(root)
    (root / "manifests.db").unlink()
    legacy = root / "ac" / "dd" / f"{'d' * 64}.json"
    legacy.parent.mkdir(parents=True)
    legacy.write_bytes(raw)
    again = ActionCache(root, max_bytes=10**9)
    assert not (root / "ac").exists()
    found = again.lookup("d" * 64)
    assert found is not None and found.artifacts == stored.artifacts


def test_a_damaged_manifest_database_is_set_aside_and_begun_again(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    ActionCache(root, max_bytes=10**9)
    (root / "manifests.db").write_bytes(b"not a database" * 1000)
    cache = ActionCache(root, max_bytes=10**9)
    output = tmp_path / "out.wasm"
    output.write_bytes(b"\0asm")
    assert cache.lookup("e" * 64) is None
    cache.store("e" * 64, [("out.wasm", "wasm", output)], [], [], None, 0.0)
    assert cache.lookup("e" * 64) is not None
    assert (root / "manifests.db.damaged").read_bytes().startswith(b"not a database")
