"""``pf serve [--host H] [--port P] [--root DIR] [--projects DIR] [--default-project NAME]
[--insecure-no-auth] ...``.

Parses the command line and starts the build service: everything in one process with
embedded defaults (SQLite history under ``.pf/``, the filesystem cache, an in-process
queue and event bus), nothing else to install or start. The server stack (Starlette,
uvicorn, SQLAlchemy) is imported only when this command runs.

The tasks served at ``/api/tasks`` come from the Pfyfile ``PFY_FILE`` names, else
``Pfyfile.pf`` in the ``--projects`` directory, else the nearest ``Pfyfile.pf`` from the
working directory upward (as ``pf TASK`` finds one); see pf.engine.taskruns.

A build request that names no project gets ``--default-project`` (PF_DEFAULT_PROJECT),
checked here so a misspelt name stops the start; unset, pf.engine.catalog's rule applies.

Listening beyond loopback needs a token (``pf token create NAME --scope admin``) unless
``--insecure-no-auth`` says otherwise; see pf.server.auth.
"""

from __future__ import annotations

import logging.config
from pathlib import Path

from pf.cli._argparse import ArgumentParser
from pf.config import MAX_BACKLOG, load_settings
from pf.errors import UsageError

_REPO = Path(__file__).resolve().parents[3]
DEFAULT_PORT = 8080
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def default_projects() -> Path:
    """The repository's demos/ when pf runs from a checkout, else the working directory."""
    demos = _REPO / "demos"
    return demos if demos.is_dir() else Path.cwd()


def default_root() -> Path:
    """The bundled demo's web directory when pf runs from a checkout, else the working
    directory."""
    web = _REPO / "demos" / "polyglot" / "web"
    return web if web.is_dir() else Path.cwd()


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="pf serve",
        description="Serve the build API, WebSocket events, artifacts and the web demo.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port (0: any free port, logged)"
    )
    parser.add_argument("--root", type=Path, help="static files and web demo (default: demo web)")
    parser.add_argument(
        "--projects",
        type=Path,
        help="projects to build; a Pfyfile.pf here serves /api/tasks (default: demos/)",
    )
    parser.add_argument(
        "--default-project",
        metavar="NAME",
        help="project for build requests that name none (overrides PF_DEFAULT_PROJECT; "
        "default: pf-web-polyglot-demo-plus-c if present, else the only project)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="API processes on the port (overrides PF_API_WORKERS; default 1; more than 1 "
        "needs PF_DATABASE_URL=postgresql://... and PF_REDIS_URL)",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        metavar="N",
        help="listen backlog (overrides PF_BACKLOG; default 2048)",
    )
    parser.add_argument(
        "--ws-ping-interval", type=float, default=20.0, help="seconds between WebSocket pings"
    )
    parser.add_argument(
        "--ws-ping-timeout", type=float, default=20.0, help="seconds to wait for a pong"
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="overrides PF_LOG_LEVEL")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="profile the whole run and write it to FILE at shutdown (pyinstrument HTML; "
        "speedscope JSON if FILE ends in .json; with --workers, one file per process)",
    )
    parser.add_argument(
        "--reload",
        action="store_true",
        help="restart when pf's source or a Pfyfile changes (development only)",
    )
    parser.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="serve a non-loopback --host, or any behind PF_TRUSTED_PROXIES, even while no "
        "token exists (anyone who reaches it can run builds and tasks)",
    )
    return parser


def command(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535, not {args.port}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be positive, not {args.workers}")
    if args.backlog is not None and not 1 <= args.backlog <= MAX_BACKLOG:
        raise UsageError(f"--backlog must be from 1 to {MAX_BACKLOG}, not {args.backlog}")
    if args.ws_ping_interval <= 0 or args.ws_ping_timeout <= 0:
        raise UsageError("--ws-ping-interval and --ws-ping-timeout must be positive")
    root = (args.root or default_root()).resolve()
    projects = (args.projects or default_projects()).resolve()
    for flag, path in (("--root", root), ("--projects", projects)):
        if not path.is_dir():
            raise UsageError(f"{flag} {path} is not a directory")
    if args.profile is not None and not args.profile.resolve().parent.is_dir():
        # Found now, not after a whole run that could not be written.
        raise UsageError(f"--profile {args.profile}: its folder does not exist")
    settings = load_settings(
        overrides={
            "log_level": args.log_level,
            "default_project": args.default_project or None,
            "api_workers": args.workers,
            "backlog": args.backlog,
        }
    )
    if settings.default_project is not None:
        from pf.engine.catalog import Projects

        Projects(projects).check_default(settings.default_project)
    if args.reload:
        from pf.cli import reload
        from pf.server.logging import log_config

        logging.config.dictConfig(log_config(settings.log_level))
        return reload.serve([a for a in argv if a != "--reload"], settings, projects)
    from pf.server import processes

    # Before anything imports the server stack: several processes must be refused now,
    # and their metrics need prometheus_client loaded after the supervisor's set-up.
    processes.check_workers(settings)
    from pf.server.options import ServeOptions

    options = ServeOptions(
        host=args.host,
        port=args.port,
        root=root,
        projects=projects,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        profile=args.profile.resolve() if args.profile is not None else None,
    )
    if settings.api_workers > 1:
        return processes.serve(settings, options, insecure_no_auth=args.insecure_no_auth)
    from pf.server import run

    code: int = run.serve(settings, options, insecure_no_auth=args.insecure_no_auth)
    return code
