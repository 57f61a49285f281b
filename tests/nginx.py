"""A private nginx running the shipped deploy/nginx/pf.conf, for tests and the bench.

``Proxy`` renders the shipped file with only its ports, certificate paths and upstream
replaced (each replacement must match exactly once, so a change to the file that the
rendering no longer fits fails loudly rather than testing something else), includes it
inside a minimal main configuration that keeps every path nginx writes (pid, temp
folders, logs) in a temp folder, and runs Debian's nginx as the current user with
``-p prefix -c conf -e stderr``. The certificate is self-signed, made by ``openssl`` for
``localhost`` and 127.0.0.1; ``cert`` is what clients verify against.
``scripts/setup.sh test`` installs nginx.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.pg import free_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "deploy" / "nginx" / "pf.conf"
BINARY = "/usr/sbin/nginx"
START_TIMEOUT = 15.0

MAIN = """\
worker_processes {workers};
pid {tmp}/nginx.pid;
{user}
events {{ worker_connections 4096; }}
http {{
  access_log {access_log};
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  include {tmp}/pf.conf;
}}
"""


def render(text: str, *, https_port: int, http_port: int, upstream: str, cert: Path) -> str:
    """The shipped configuration with its ports, certificate and upstream replaced."""
    replacements = {
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "server 127.0.0.1:8080;": f"server {upstream};",
        "/etc/ssl/certs/pf.example.com.pem": str(cert),
        "/etc/ssl/private/pf.example.com.key": str(cert.with_suffix(".key")),
    }
    for old, new in replacements.items():
        count = text.count(old)
        if count != 1:
            raise AssertionError(f"{SHIPPED}: expected {old!r} once, found it {count} times")
        text = text.replace(old, new)
    return text


def self_signed(directory: Path) -> Path:
    """A certificate (and its key beside it, .key) for localhost and 127.0.0.1."""
    cert = directory / "pf.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-keyout", str(cert.with_suffix(".key")), "-out", str(cert),
            "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert


class Proxy:
    """nginx with the shipped configuration in front of ``upstream`` (host:port)."""

    def __init__(self, upstream: str, workers: int = 1, access_log: bool = True) -> None:
        if not Path(BINARY).exists():
            raise RuntimeError(f"{BINARY} is missing: scripts/setup.sh test installs nginx")
        self.upstream = upstream
        self.workers = workers
        self.access_log = access_log
        self.root = Path(tempfile.mkdtemp(prefix="pf-nginx-"))
        self.cert = self_signed(self.root)
        self.stderr = self.root / "stderr.log"
        self.port = 0
        self.http_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> Proxy:
        # A free port can be taken by another test between the check and nginx's bind:
        # then nginx exits at once and another pair is tried.
        for _ in range(5):
            self.port, self.http_port = free_port(), free_port()
            self._write_config()
            if self._run():
                return self
        raise RuntimeError(f"nginx did not start:\n{self.stderr.read_text(errors='replace')}")

    def _write_config(self) -> None:
        site = render(
            SHIPPED.read_text(),
            https_port=self.port,
            http_port=self.http_port,
            upstream=self.upstream,
            cert=self.cert,
        )
        (self.root / "pf.conf").write_text(site)
        # As root, nginx's workers would drop to nobody, who cannot write the temp folder.
        user = "user root;" if os.geteuid() == 0 else ""
        access = str(self.root / "access.log") if self.access_log else "off"
        (self.root / "nginx.conf").write_text(
            MAIN.format(tmp=self.root, user=user, workers=self.workers, access_log=access)
        )

    def _run(self) -> bool:
        with self.stderr.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    BINARY,
                    *("-p", str(self.root), "-c", str(self.root / "nginx.conf")),
                    *("-e", "stderr", "-g", "daemon off;"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                if b"Address already in use" in self.stderr.read_bytes():
                    return False
                raise RuntimeError(f"nginx exited:\n{self.stderr.read_text(errors='replace')}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"nginx did not listen:\n{self.stderr.read_text(errors='replace')}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: the master stops its workers
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Proxy:
        try:
            return self.start()
        except BaseException:
            self.destroy()
            raise

    def __exit__(self, *_: object) -> None:
        self.destroy()
