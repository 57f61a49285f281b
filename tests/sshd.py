"""Private OpenSSH servers on loopback for the remote-host tests.

Each :class:`Sshd` has a host key made for it, listens on a free port of 127.0.0.1 and
lets in the user running the tests with a client key made by the test. :func:`client_home`
lays out the ``~/.ssh`` that pf (asyncssh) and ssh/rsync read: the key, a
``known_hosts`` with the servers' keys, and a ``config`` naming both.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def keygen(path: Path) -> str:
    """An ed25519 key pair at ``path`` (``path.pub`` beside it); the public key's line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sshd:
    """One sshd on 127.0.0.1:``port`` accepting ``authorized`` keys; :meth:`stop` ends it."""

    def __init__(self, root: Path, authorized: str) -> None:
        root.mkdir(parents=True)
        self.host_key = keygen(root / "host_key")
        (root / "authorized_keys").write_text(authorized + "\n")
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        self.port = free_port()
        self.log = root / "sshd.log"
        with self.log.open("wb") as log:  # the child keeps its own copy
            self.process = self._start(root, log)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {self.log.read_text()}") from None
                time.sleep(0.05)

    def _start(self, root: Path, log: BinaryIO) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                SSHD,
                "-D",
                "-e",
                "-p",
                str(self.port),
                "-o",
                "ListenAddress=127.0.0.1",
                "-h",
                str(root / "host_key"),
                "-o",
                f"AuthorizedKeysFile={root / 'authorized_keys'}",
                "-o",
                "StrictModes=no",
                "-o",
                "PasswordAuthentication=no",
                "-o",
                "PidFile=none",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    @property
    def address(self) -> str:
        return f"{getpass.getuser()}@127.0.0.1:{self.port}"

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {' '.join(self.host_key.split()[:2])}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def client_home(home: Path, key: Path, servers: list[Sshd]) -> None:
    """``home/.ssh`` with ``key`` as the default identity and every server's host key."""
    ssh = home / ".ssh"
    ssh.mkdir(parents=True, exist_ok=True)
    shutil.copy(key, ssh / "id_ed25519")
    shutil.copy(key.with_suffix(".pub"), ssh / "id_ed25519.pub")
    (ssh / "id_ed25519").chmod(0o600)
    (ssh / "known_hosts").write_text("".join(s.known_hosts_line() + "\n" for s in servers))
    # ssh and rsync read ~ from the password database, not $HOME: point them here too.
    (ssh / "config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {ssh / 'id_ed25519'}\n"
        f"  UserKnownHostsFile {ssh / 'known_hosts'}\n  BatchMode yes\n"
    )
