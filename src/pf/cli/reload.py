"""``pf serve --reload``: serve, and serve again whenever pf's own source or a Pfyfile
changes (for working on pf or on a Pfyfile; not for production).

watchfiles (Rust's notify: inotify on Linux) watches pf's package folder, the projects
folder and the folder of the Pfyfile in force; a change to a ``.py`` file of pf or to a
``Pfyfile*.pf`` stops the running ``pf serve`` as Ctrl-C would (it drains, builds get
PF_SHUTDOWN_GRACE) and starts it again with the same arguments. Nothing else restarts
it: builds write their outputs under those folders all the time. A server that cannot
start (a syntax error just saved) is started again at the next change. Ctrl-C or SIGTERM
stops both.
"""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

from pf.config import Settings

log = logging.getLogger("pf.server")

PACKAGE = Path(__file__).resolve().parents[1]  # src/pf


def relevant(_change: object, path: str) -> bool:
    """Whether a changed file restarts the server: pf's Python source or a Pfyfile."""
    changed = Path(path)
    if changed.suffix == ".py":
        return changed.is_relative_to(PACKAGE)
    return changed.suffix == ".pf" and changed.name.startswith("Pfyfile")


def watched(settings: Settings, projects: Path) -> list[Path]:
    """pf's package, the projects folder, and the folder of the Pfyfile pf serve uses."""
    from pf.engine.taskruns import Pfyfiles

    paths = [PACKAGE, projects]
    pfyfile = Pfyfiles(settings, projects).locate()
    if pfyfile is not None:
        paths.append(pfyfile.resolve().parent)
    unique: list[Path] = []
    for path in paths:
        if not any(path.is_relative_to(kept) for kept in unique):
            unique = [kept for kept in unique if not kept.is_relative_to(path)] + [path]
    return unique


def serve(argv: list[str], settings: Settings, projects: Path) -> int:
    """Run ``pf serve argv`` (without --reload) until Ctrl-C or SIGTERM, again after each
    relevant change."""
    import watchfiles

    paths = watched(settings, projects)
    command = shlex.join([sys.executable, "-m", "pf", "serve", *argv])
    log.info("pf serve --reload: watching", extra={"paths": [str(p) for p in paths]})

    def restarting(changes: set[tuple[watchfiles.Change, str]]) -> None:
        log.info("pf serve --reload: restarting", extra={"changed": sorted(p for _, p in changes)})

    watchfiles.run_process(
        *paths,
        target=command,
        target_type="command",
        watch_filter=relevant,
        callback=restarting,
        # As long as pf serve's own drain may take (server/processes.py's deadline).
        sigint_timeout=int(2 * settings.shutdown_grace) + 10,
    )
    return 0
