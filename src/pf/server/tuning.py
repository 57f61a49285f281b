"""What pf serve asks of Linux as it starts: as many open files as it may have, and a
listen backlog the kernel keeps.

Every connection is a file descriptor, and so is each database connection, file being
served and compile's pipe. Services commonly start with a soft RLIMIT_NOFILE of 1024
(systemd's default, kept for programs that use select()), below PF_MAX_CONNECTIONS;
the hard limit is usually far higher. pf waits on epoll (uvloop), never select(), so it
raises its soft limit to the hard one, which needs no privilege, and warns when even
that leaves fewer than PF_MAX_CONNECTIONS plus a reserve: past it accept() fails with
EMFILE instead of pf answering 503. Compilers are unaffected: the sandbox gives each
its own PF_MAX_OPEN_FILES.

listen() silently caps its backlog at net.core.somaxconn: pf warns when PF_BACKLOG is
above it, so a raised setting the kernel ignores does not go unnoticed
(deploy/sysctl.d/60-pf.conf raises the kernel's side).
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pf.config import Settings

log = logging.getLogger("pf.server")

# Descriptors pf holds beside its connections: the database, the files and artifacts
# being sent, the recorder, and the pipes of the compiles it runs.
RESERVE = 256
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def raise_open_files(settings: Settings) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the limit now in force and
    logs a warning when it cannot hold PF_MAX_CONNECTIONS connections."""
    # Linux keeps RLIMIT_NOFILE finite (at most fs.nr_open), so the hard limit is a number.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    needed = settings.max_connections + RESERVE
    if soft < needed:
        log.warning(
            "the open-file limit is below what PF_MAX_CONNECTIONS needs: past it new "
            "connections fail instead of getting 503; raise the hard limit "
            "(LimitNOFILE= in a systemd unit, ulimit -Hn) or lower PF_MAX_CONNECTIONS",
            extra={
                "open_files": soft,
                "needed": needed,
                "max_connections": settings.max_connections,
            },
        )
    return soft


def check_backlog(settings: Settings) -> None:
    """Warn when the kernel will cap PF_BACKLOG at a lower net.core.somaxconn."""
    try:
        cap = int(SOMAXCONN.read_text())
    except (OSError, ValueError) as exc:
        # /proc not mounted (a bare chroot): nothing to compare with, and no reason to stop.
        log.debug(f"cannot read {SOMAXCONN}: {exc}")
        return
    if settings.backlog > cap:
        log.warning(
            "the kernel caps the listen backlog below PF_BACKLOG: raise net.core.somaxconn "
            "(deploy/sysctl.d/60-pf.conf) or lower PF_BACKLOG",
            extra={"backlog": settings.backlog, "somaxconn": cap},
        )
