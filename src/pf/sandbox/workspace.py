"""The writable directories of confined commands: where they live, who owns them, and
the check that what a confined command left in one cannot lead pf elsewhere.

bwrap runs as the sandbox's uid and must traverse every directory above the one it
binds, so workspaces live in ``<tmp>/pf-sandbox-<euid>``: owned by pf's user, mode
0711 (anyone may pass, nobody else may list or write), refused if it is anything else
(a link, someone else's). Each workspace in it is 0700 and owned by the sandbox's uid.
A workspace is locked (``flock``) while in use; one a killed pf left behind is removed
by the next pf process that makes one. Knows nothing of builds.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pf.errors import SandboxUnavailable

_PREFIX = "ws-"
# A sandbox cell's directory (pf.sandbox.cells), locked the same way while it lives.
CELL_PREFIX = "cell-"
# A workspace is locked right after it is made; one younger than this may be between
# the two, so the sweep leaves it alone.
_STALE_AFTER = 60.0
_swept: set[Path] = set()
_sweep_lock = threading.Lock()


def root() -> Path:
    """The directory workspaces are made in, created or checked (see the module docstring)."""
    path = Path(tempfile.gettempdir()) / f"pf-sandbox-{os.geteuid()}"
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o711)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        raise SandboxUnavailable(
            f"{path} cannot be used for sandboxed builds ({exc.strerror})",
            f"remove {path}; pf creates it again",
        ) from exc
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise SandboxUnavailable(
                f"{path} belongs to uid {st.st_uid}, not to pf's user",
                f"remove {path}; pf creates it again",
            )
        if stat.S_IMODE(st.st_mode) != 0o711:
            os.fchmod(fd, 0o711)
    finally:
        os.close(fd)
    for parent in path.parents:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            raise SandboxUnavailable(
                f"{parent} is not traversable by other users, so the sandbox cannot reach {path}",
                "point TMPDIR at a directory every user may traverse, such as /tmp",
            )
    return path


@contextlib.contextmanager
def workspace(uid: int | None) -> Iterator[Path]:
    """A new empty workspace, owned by ``uid`` (None: pf's own), locked while the block
    runs. The caller removes it."""
    base = root()
    sweep(base)
    path = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=base))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if uid is not None:
            os.fchown(fd, uid, uid)
        yield path
    finally:
        os.close(fd)


def sweep(base: Path) -> None:
    """Remove the workspaces no live pf holds (their pf was killed); once per process."""
    with _sweep_lock:
        if base in _swept:
            return
        _swept.add(base)
    now = time.time()
    for entry in os.scandir(base):
        if not entry.name.startswith((_PREFIX, CELL_PREFIX)) or entry.is_symlink():
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        except OSError:
            continue  # removed meanwhile
        try:
            if now - os.fstat(fd).st_mtime < _STALE_AFTER:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running build holds it
            shutil.rmtree(entry.path, ignore_errors=True)
        finally:
            os.close(fd)


def hand_over(path: Path, uid: int | None) -> list[str]:
    """Check the tree under ``path`` and give what pf wrote in it to ``uid``.

    Returns the entries (relative paths) that are neither directories nor regular
    files: a link or device a confined command planted there, which pf must not follow.
    Call it only while nothing confined runs in ``path`` (between steps), so nothing
    changes between the check and what pf does next.
    """
    unsafe: list[str] = []
    pending = [path]
    while pending:
        directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    pending.append(Path(entry.path))
                elif not stat.S_ISREG(st.st_mode):
                    unsafe.append(os.path.relpath(entry.path, path))
                    continue
                if uid is not None and st.st_uid != uid:
                    os.chown(entry.path, uid, uid, follow_symlinks=False)
    return sorted(unsafe)


def remove(path: Path) -> None:
    """Remove a directory a failed start left, whatever is in it."""
    shutil.rmtree(path, ignore_errors=True)
