"""Shared fixtures: every test runs with pf's state pointed into its own tmp_path."""

from __future__ import annotations

import itertools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from pf.config import Settings, load_settings
from tests.pg import PgCluster
from tests.redisd import RedisServer
from tests.tools import PREFIX, STRICT

# A shell starts a background job (`make test &`) with SIGINT ignored, and an ignored
# signal stays ignored across exec: every pf a test starts would then ignore the Ctrl-C
# the tests send it. The tests run as if started from a terminal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demos" / "polyglot"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under PF_STRICT_TOOLS=1 a test skipped for a missing tool fails (tests/tools.py)."""
    report = yield
    if STRICT and report.skipped and PREFIX in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = (
            f"{report.longrepr}\nPF_STRICT_TOOLS=1: set-up should have installed this tool"
        )
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints what tests measured (``record_property("measured", text)``): figures to
    read, such as the playground's bundle size and first paint, never asserted on."""
    lines = [
        f"{report.nodeid}: {value}"
        for report in terminalreporter.stats.get("passed", [])
        for name, value in report.user_properties
        if name == "measured"
    ]
    if lines:
        terminalreporter.write_sep("-", "measured")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the cache and every PF_* setting at tmp_path, so tests never share state."""
    for name in list(os.environ):
        if name.startswith("PF_"):
            monkeypatch.delenv(name)
    # `make test` runs pytest inside make: its variables would make the tests' own make
    # runs print "Entering directory" lines a user's terminal never shows.
    for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKE_TERMOUT", "MAKE_TERMERR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PF_CACHE_DIR", str(tmp_path / "pf-cache"))
    # Task runs' compiler caches would start an sccache server per test's cache, alive
    # for minutes after it: tests of those caches turn them on themselves.
    monkeypatch.setenv("PF_COMPILER_CACHE", "off")
    monkeypatch.setenv("NO_COLOR", "1")


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """This worker's private PostgreSQL server, started on first use (a few seconds)."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


_databases = itertools.count(1)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The URL of a new, empty database on this worker's private PostgreSQL."""
    return pg_cluster.create_database(f"pf_test_{os.getpid()}_{next(_databases)}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """This worker's private Redis server, started on first use."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of this worker's private Redis, emptied for this test."""
    if redis_server.process is None:  # a test stopped it and did not start it again
        redis_server.start()
    redis_server.flush()
    return redis_server.url()


# The backends a test taking ``database_url`` runs on: every store-backed behaviour
# must hold on both.
DATABASE_BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=DATABASE_BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database's URL: a SQLite file in tmp_path, then a PostgreSQL one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'pf.db'}"
    return str(request.getfixturevalue("pg_url"))


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (a zombie counts until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def pids_with_word(word: str, but: int = 0) -> list[int]:
    """The pids whose argv holds ``word`` as one of its words (``but`` left out).

    Processes that pf runs in a pid namespace of their own cannot report their host
    pids, so tests find them by a marker word in their argv.
    """
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == but:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if word.encode() in argv:
            found.append(int(entry.name))
    return found
