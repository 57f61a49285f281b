"""A private Redis server for tests and the bench: Debian's redis-server, never a service.

``RedisServer`` runs ``redis-server`` on 127.0.0.1 and a free port with its working
directory in a temp folder and persistence off, so a test that restarts it (``stop`` then
``start``) gets an empty server on the same port, as a restarted cache would be. The
fixtures in tests/conftest.py start one per xdist worker, lazily, and flush it before each
test that asks for it. ``scripts/setup.sh test`` installs redis-server.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.pg import free_port

BINARY = "/usr/bin/redis-server"


class RedisServer:
    """One redis-server on a free loopback port; ``start``, ``stop``, ``destroy``."""

    def __init__(self) -> None:
        if not Path(BINARY).exists():
            raise RuntimeError(f"{BINARY} is missing: scripts/setup.sh test installs redis-server")
        self.root = Path(tempfile.mkdtemp(prefix="pf-redis-"))
        self.log = self.root / "redis.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (on the same port as before, after a ``stop``)."""
        if not self.port:
            self.port = free_port()
        self.process = subprocess.Popen(
            [
                BINARY,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.root),
                "--save", "",
                "--appendonly", "no",
                "--logfile", str(self.log),
            ],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within 10 s")

    def stop(self) -> None:
        """Stop the server at once, as a crash or a restart would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def flush(self) -> None:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"FLUSHALL\r\n")
            if not sock.recv(64).startswith(b"+OK"):
                raise RuntimeError("redis FLUSHALL failed")
