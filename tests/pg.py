"""A private PostgreSQL server for tests: Debian's postgresql-15, never a system service.

``PgCluster`` runs ``initdb`` and ``pg_ctl`` from /usr/lib/postgresql/15/bin as user
``postgres`` (initdb refuses root) on a data and socket directory of its own in a temp
folder, listening on 127.0.0.1 and a free port, with trust authentication on loopback
only. The fixtures in tests/conftest.py start one per xdist worker, lazily (a session
that asks for no PostgreSQL starts none), and give each test a fresh database in it;
a test that stops the server (tests/server/test_postgres.py) starts a cluster of its own.
``scripts/setup.sh test`` installs postgresql-15.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"


def free_port() -> int:
    """A loopback port nothing listens on now (the private servers of tests and bench)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """One PostgreSQL server on a free loopback port; ``start``, ``stop``, ``destroy``."""

    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise RuntimeError(
                f"{BIN / 'initdb'} is missing: scripts/setup.sh test installs postgresql-15"
            )
        self.root = Path(tempfile.mkdtemp(prefix="pf-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "run"
        self.sockets.mkdir()
        self.log = self.root / "postgres.log"
        self.port = 0
        if os.geteuid() == 0:
            shutil.chown(self.root, USER)
            shutil.chown(self.sockets, USER)
        self._run(
            BIN / "initdb",
            "-D", str(self.data),
            "-U", USER,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
        )  # fmt: skip

    def _run(self, *argv: str | Path) -> None:
        command = [str(arg) for arg in argv]
        if os.geteuid() == 0:
            command = ["runuser", "-u", USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        """Start the server (on the same port as before, after a ``stop``)."""
        if not self.port:
            self.port = free_port()
        # fsync off: a test database need not survive a power cut, and it spares the disk
        # the three engineers share.
        options = f"-h 127.0.0.1 -p {self.port} -k {self.sockets} -F -c max_connections=200"
        self._run(BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "start")

    def stop(self) -> None:
        """Stop the server at once, as ``pg_ctl stop -m fast`` does to a live one."""
        self._run(BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = USER) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
