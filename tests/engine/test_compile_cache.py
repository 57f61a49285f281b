"""The content-addressed cache, exercised through real clang compiles.

A wrapper script stands in front of the real clang (pinned with PF_TOOL_CLANG) and
appends one line per compiler start to a log, so "no compiler process started" is
observed, not inferred.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pf.config import load_settings
from pf.engine import ActionCache, compile_sources
from pf.engine.manifests import Manifests
from pf.engine.singleflight import flight
from pf.errors import BuildCancelled, CompileFailed
from pf.toolchains import CompileRequest, Options, SourceFile
from tests.engine.conftest import counting_wrapper

ADD_C = b"int add(int a, int b) { return a + b; }\n"


def _starts(log: Path) -> int:
    return len(log.read_text().splitlines())


def _damage(cache_dir: Path, digest: str, data: bytes) -> None:
    """Put ``data`` in place of blob ``digest``'s bytes, wherever the cache keeps them: a
    row of its database, or a file."""
    with sqlite3.connect(cache_dir / "manifests.db") as db:
        kept = db.execute("UPDATE blobs SET data = ? WHERE digest = ?", (data, digest)).rowcount
    if not kept:
        blob = cache_dir / "cas" / digest[:2] / digest
        blob.chmod(0o644)
        blob.write_bytes(data)


def _request(source: bytes = ADD_C, **options: str) -> CompileRequest:
    return CompileRequest("c", "wasm", (SourceFile("add.c", source),), Options.parse(options))


def test_second_identical_compile_is_a_hit_that_starts_no_compiler(counted: Path) -> None:
    settings = load_settings()
    first = compile_sources(_request(), settings)
    starts = _starts(counted)
    assert not first.cached and starts >= 1
    second = compile_sources(_request(), settings)
    assert second.cached
    assert _starts(counted) == starts
    assert second.key == first.key
    assert [a.digest for a in second.artifacts] == [a.digest for a in first.artifacts]
    assert second.artifacts[0].read_bytes()[:4] == b"\0asm"


def test_a_caller_that_just_missed_still_finds_what_was_stored_meanwhile(counted: Path) -> None:
    # The build service's triage missed, then an identical build stored its result
    # before this one ran: it is found under the single-flight lock, no compiler starts.
    settings = load_settings()
    first = compile_sources(_request(), settings)
    starts = _starts(counted)
    again = compile_sources(_request(), settings, missed=True)
    assert again.cached and again.key == first.key
    assert _starts(counted) == starts


def test_a_changed_source_byte_or_option_misses(counted: Path) -> None:
    settings = load_settings()
    base = compile_sources(_request(), settings)
    byte = compile_sources(_request(ADD_C.replace(b"a + b", b"a - b")), settings)
    option = compile_sources(_request(opt_level="s"), settings)
    assert not byte.cached and not option.cached
    assert len({base.key, byte.key, option.key}) == 3


def test_a_changed_toolchain_version_misses(
    counted: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = compile_sources(_request(), load_settings())
    other = counting_wrapper(tmp_path / "clang-next", counted, version="99.1.0")
    monkeypatch.setenv("PF_TOOL_CLANG", str(other))
    second = compile_sources(_request(), load_settings())
    assert not second.cached
    assert second.key != first.key
    assert {t.version for t in second.tools} == {"99.1.0"}


def test_concurrent_identical_compiles_run_the_compiler_once(counted: Path) -> None:
    settings = load_settings()
    results = []
    barrier = threading.Barrier(6)

    def build() -> None:
        barrier.wait()
        results.append(
            compile_sources(_request(b"int mul(int a, int b) { return a * b; }\n"), settings)
        )

    threads = [threading.Thread(target=build) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 6
    assert sorted(r.cached for r in results) == [False] + [True] * 5
    compiles = [line for line in counted.read_text().splitlines() if " -c " in f" {line} "]
    assert len(compiles) == 1


def test_a_single_flight_lock_holds_its_key_only_and_is_no_file_of_its_own(
    tmp_path: Path,
) -> None:
    # Keys are bytes of one lock file: a fresh cache creates no file per key.
    locks = tmp_path / "locks"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with flight(locks, "a" * 64):
            held.set()
            release.wait(30)

    def take(key: str, taken: threading.Event) -> None:
        with flight(locks, key):
            taken.set()

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30)
    other, same = threading.Event(), threading.Event()
    threading.Thread(target=take, args=("b" * 64, other)).start()
    assert other.wait(30), "another key waited for the held one"
    waiter = threading.Thread(target=take, args=("a" * 64, same))
    waiter.start()
    assert not same.wait(0.3), "the held key was taken twice"
    release.set()
    assert same.wait(30)
    holder.join(30)
    waiter.join(30)
    assert sorted(p.name for p in locks.iterdir()) == ["flight.lock"]


def _compile_in_child(source: bytes) -> bool:
    return compile_sources(_request(source), load_settings()).cached


def test_concurrent_identical_compiles_in_separate_processes_run_once(counted: Path) -> None:
    source = b"int sub(int a, int b) { return a - b; }\n"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        cached = pool.map(_compile_in_child, [source] * 4)
    assert sorted(cached) == [False, True, True, True]
    compiles = [line for line in counted.read_text().splitlines() if " -c " in f" {line} "]
    assert len(compiles) == 1


def test_a_truncated_blob_is_detected_and_rebuilt(counted: Path) -> None:
    settings = load_settings()
    first = compile_sources(_request(), settings)
    (artifact,) = first.artifacts
    _damage(settings.cache_dir, artifact.digest, artifact.read_bytes()[:10])
    starts = _starts(counted)
    again = compile_sources(_request(), settings)
    assert not again.cached
    assert _starts(counted) > starts
    assert again.artifacts[0].read_bytes() == first.artifacts[0].read_bytes()
    assert len(again.artifacts[0].read_bytes()) == first.artifacts[0].size


def test_a_failed_compile_is_not_cached(counted: Path) -> None:
    settings = load_settings()
    broken = _request(b"int add(int a, int b) { return a + }\n")
    with pytest.raises(CompileFailed) as first:
        compile_sources(broken, settings)
    starts = _starts(counted)
    with pytest.raises(CompileFailed):
        compile_sources(broken, settings)
    assert _starts(counted) > starts
    diagnostic = first.value.diagnostics[0]
    assert (diagnostic.file, diagnostic.line, diagnostic.severity) == ("add.c", 1, "error")
    assert diagnostic.col > 0


def test_least_recently_used_entries_are_evicted_past_the_bound(counted: Path) -> None:
    settings = load_settings()
    sources = [f"int f{i}(int a) {{ return a * {i}; }}\n".encode() for i in range(4)]
    results = [compile_sources(_request(src), settings) for src in sources]
    # An entry's bytes are its blob's and its manifest's.
    manifests = {key: size for _, size, key in Manifests(settings.cache_dir).entries()}
    size = max(r.artifacts[0].size + manifests[r.key] for r in results)
    # An hour later, use the first entry again so that it is the most recently used,
    # then shrink the bound.
    with sqlite3.connect(settings.cache_dir / "manifests.db") as db:
        db.execute("UPDATE manifests SET used = used - 3600")
        db.execute("UPDATE blobs SET used = used - 3600")
    compile_sources(_request(sources[0]), settings)
    cache = ActionCache(settings.cache_dir, max_bytes=size * 2)
    cache.evict()
    assert cache.lookup(results[0].key) is not None
    survivors = [cache.lookup(r.key) is not None for r in results[1:]]
    assert survivors.count(True) <= 1
    assert sum(1 for r in results if cache.lookup(r.key) is not None) <= 2


def test_pf_compile_on_a_hit_starts_no_compiler_from_the_command_line(
    counted: Path, tmp_path: Path
) -> None:
    source = tmp_path / "add.c"
    source.write_bytes(ADD_C)
    argv = [sys.executable, "-m", "pf", "compile", str(source), "-o", str(tmp_path / "o")]
    env = dict(os.environ)
    first = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert first.returncode == 0, first.stderr
    starts = _starts(counted)
    second = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert second.returncode == 0 and "cache hit" in second.stdout
    assert _starts(counted) == starts
    assert (tmp_path / "o" / "add.wasm").read_bytes()[:4] == b"\0asm"


def test_cancelling_a_running_compile_kills_it_and_caches_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pidfile = tmp_path / "compiler.pid"
    hang = tmp_path / "clang"
    hang.write_text(
        "#!/bin/bash\n"
        'if [ "$1" = --version ]; then echo "clang version 14.0.6"; exit 0; fi\n'
        f"sleep 300 & echo $! > {pidfile}; wait\n"
    )
    hang.chmod(0o755)
    monkeypatch.setenv("PF_TOOL_CLANG", str(hang))
    monkeypatch.setenv("PF_CCACHE", "0")
    # Unconfined: the wrapper writes its child's pid outside the scratch dir.
    monkeypatch.setenv("PF_SANDBOX", "off")
    cancel = threading.Event()
    watcher = threading.Thread(target=lambda: (_wait_for(pidfile), cancel.set()), daemon=True)
    watcher.start()
    with pytest.raises(BuildCancelled, match="c -> wasm build was cancelled"):
        compile_sources(_request(), load_settings(), cancel=cancel)
    pid = int(pidfile.read_text())
    stat_file = Path(f"/proc/{pid}/stat")
    assert not stat_file.exists() or stat_file.read_text().split()[2] == "Z"


def _wait_for(path: Path) -> None:
    for _ in range(400):
        if path.exists() and path.read_text().strip():
            return
        threading.Event().wait(0.05)


HELLO_F90 = b'program hello\n  print *, "hello", 1\nend program hello\n'
TWICE_F90 = b"""integer(c_int) function twice(n) bind(C, name="twice")
  use iso_c_binding
  integer(c_int), value :: n
  twice = 2 * n
end function twice
"""


@pytest.fixture
def counted_clang19(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Route clang-19 (Fortran's wasm back end) through a logging wrapper."""
    log = tmp_path / "clang-19.log"
    log.touch()
    wrapper = counting_wrapper(tmp_path / "clang-19", log, real="/usr/bin/clang-19")
    monkeypatch.setenv("PF_TOOL_CLANG_19", str(wrapper))
    # Unconfined: a confined wrapper could not write its log (see the `counted` fixture).
    monkeypatch.setenv("PF_SANDBOX", "off")
    return log


def _fortran(source: bytes, target: str = "wasm") -> CompileRequest:
    return CompileRequest("fortran", target, (SourceFile("prog.f90", source),))


def _runtime_builds(log: Path) -> int:
    return sum("pf_fortran_rt.c" in line for line in log.read_text().splitlines())


def test_the_fortran_runtime_is_built_once_for_every_program_and_target(
    counted_clang19: Path,
) -> None:
    settings = load_settings()
    results = [
        compile_sources(_fortran(HELLO_F90), settings),
        compile_sources(_fortran(TWICE_F90), settings),
        compile_sources(_fortran(TWICE_F90, "asm"), settings),
    ]
    assert not any(r.cached for r in results)
    assert _runtime_builds(counted_clang19) == 1


def test_a_damaged_prebuilt_runtime_is_rebuilt_not_linked(counted_clang19: Path) -> None:
    settings = load_settings()
    compile_sources(_fortran(HELLO_F90), settings)
    store = Manifests(settings.cache_dir)
    found = [store.get(key) for _, _, key in store.entries()]
    manifests = [m[0] for m in found if m is not None and b"pf_fortran_rt.o" in m[0]]
    assert len(manifests) == 1
    runtime = json.loads(manifests[0])["outputs"][0]
    _damage(settings.cache_dir, runtime["digest"], b"\0asm damaged")
    rebuilt = compile_sources(_fortran(TWICE_F90), settings)
    assert not rebuilt.cached
    assert _runtime_builds(counted_clang19) == 2
    # Built again to the same bytes, which replaced the damaged ones.
    path = ActionCache.for_settings(settings).fetch(runtime["digest"], runtime["size"])
    assert path is not None and path.read_bytes() != b"\0asm damaged"


def test_a_finished_pf_process_leaves_no_scratch_directory(tmp_path: Path) -> None:
    source = tmp_path / "add.c"
    source.write_bytes(ADD_C)
    argv = [sys.executable, "-m", "pf", "compile", str(source), "-o", str(tmp_path / "o")]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "pf-cache" / "tmp").iterdir()) == []


def test_stores_past_the_bound_evict_the_least_recently_used(tmp_path: Path) -> None:
    cache = ActionCache(tmp_path / "cache", max_bytes=2500)
    keys = [f"{i:064x}" for i in range(5)]
    for i, key in enumerate(keys):
        output = tmp_path / f"out{i}"
        output.write_bytes(bytes([i]) * 1000)
        cache.store(key, [("out.wasm", "wasm", output)], [], [], None, 0.0)
        stored = sum(p.stat().st_size for p in (tmp_path / "cache" / "cas").glob("*/*"))
        assert stored <= 2500
    assert cache.lookup(keys[-1]) is not None
    assert cache.lookup(keys[0]) is None
    assert cache.stats.evicted >= 3
