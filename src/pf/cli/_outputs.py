"""What ``pf compile`` and ``pf build`` share: the output directory and the build records.

A bad ``-o`` is the user's to fix, so it is a UsageError naming the path and the reason,
found before any compiler runs where that can be known. ``--json`` prints one record per
build, completed or failed, in the shape of the server's build records (docs/server.md).
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from pf.engine.compile import BuildResult
from pf.errors import CompileFailed, PfError, UsageError

_HINT = "choose another output directory with -o"
# Errors that say the path itself is wrong; others (a full disk) are not the user's typo.
_PATH_ERRNOS = {
    errno.ENOTDIR,
    errno.EEXIST,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOENT,
    errno.ENAMETOOLONG,
    errno.ELOOP,
}


def check_output_dir(path: Path) -> None:
    """Refuse ``path`` as an output directory if it, or what holds it, is not a directory."""
    for place in (path, *path.parents):
        if place.exists():
            if not place.is_dir():
                raise UsageError(
                    f"cannot write outputs to {path}: {place} exists and is not a directory",
                    hint=_HINT,
                )
            return


def export(result: BuildResult, dest: Path) -> list[Path]:
    """Copy ``result``'s artifacts into ``dest``, turning a filesystem refusal into a PfError."""
    try:
        return result.export(dest)
    except OSError as exc:
        where = exc.filename if exc.filename is not None else dest
        message = f"cannot write {where}: {exc.strerror or exc}"
        if exc.errno in _PATH_ERRNOS:
            raise UsageError(message, hint=_HINT) from exc
        raise PfError(message) from exc


def completed(result: BuildResult, written: list[Path]) -> dict[str, Any]:
    return {
        "status": "completed",
        **result.to_dict(),
        "error": None,
        "outputs": [str(p) for p in written],
    }


def failed(language: str, target: str, error: PfError, seconds: float) -> dict[str, Any]:
    """The record of a build that ended in ``error``: its message, code and diagnostics."""
    compile_error = error if isinstance(error, CompileFailed) else None
    return {
        "status": "failed",
        "language": language,
        "target": target,
        "cached": False,
        "duration": round(seconds * 1000, 3),
        "artifacts": [],
        "diagnostics": [d.to_dict() for d in compile_error.diagnostics] if compile_error else [],
        "error": error.message,
        "code": error.code,
        "hint": error.hint,
        "log": compile_error.log if compile_error else None,
        "outputs": [],
    }
