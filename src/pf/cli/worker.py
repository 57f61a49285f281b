"""``pf worker [--concurrency N] [--projects DIR] [--metrics [HOST:]PORT]``: run builds
from shared mode's queue.

With a PostgreSQL ``PF_DATABASE_URL`` and ``PF_REDIS_URL`` (the ones pf serve uses), it
takes the builds pf serve queued and runs them through the engine as pf serve would in
one process (pf.engine.farm); start as many as the machines have cores for, on any
machine that reaches the database. Logs are JSON lines on stderr, as pf serve's. SIGTERM
or Ctrl-C stops taking builds and lets the running ones finish. With ``--metrics``
(PF_WORKER_METRICS) it serves its Prometheus metrics: the builds it ran, its cache, its
heartbeat and memory (deploy/prometheus scrapes them).

Like pf serve it fails closed: a worker whose compile sandbox cannot start does not
start (exit 3, naming the cause and the fix), rather than take builds only to fail
them while other workers could run them; ``PF_SANDBOX=off`` is warned about at every
start, and task processes a killed worker left are killed first.
"""

from __future__ import annotations

import asyncio
import logging.config
from pathlib import Path

from pf import config, sandbox
from pf.cli._argparse import ArgumentParser
from pf.cli.serve import LOG_LEVELS, default_projects
from pf.config import load_settings
from pf.errors import UsageError


def _parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="pf worker",
        description="Run the builds pf serve queues in shared mode (docs/scale.md).",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="builds run at once (overrides PF_WORKER_CONCURRENCY; default: the cores)",
    )
    parser.add_argument(
        "--projects",
        type=Path,
        help="the projects pf serve builds, and its Pfyfile for task runs (default: demos/)",
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, help="overrides PF_LOG_LEVEL")
    parser.add_argument(
        "--metrics",
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (overrides "
        "PF_WORKER_METRICS; host 127.0.0.1 if left out; port 0: any free port, logged)",
    )
    return parser


def command(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError(f"--concurrency must be positive, not {args.concurrency}")
    projects = (args.projects or default_projects()).resolve()
    if not projects.is_dir():
        raise UsageError(f"--projects {projects} is not a directory")
    metrics = None
    if args.metrics is not None:
        try:
            metrics = config.parse_listen_address(args.metrics)
        except ValueError as error:
            raise UsageError(f"--metrics: {error}") from error
    settings = load_settings(
        overrides={
            "log_level": args.log_level,
            "worker_concurrency": args.concurrency,
            "worker_metrics": metrics,
        }
    )
    from pf.engine.farm import Farm
    from pf.server.logging import log_config

    logging.config.dictConfig(log_config(settings.log_level))
    log = logging.getLogger("pf.worker")
    unconfinable = sandbox.start_up(settings, log, "pf")
    if unconfinable is not None:
        raise unconfinable
    if settings.worker_metrics is not None:
        _serve_metrics(settings.worker_metrics)
    farm = Farm(settings, projects)
    asyncio.run(farm.run(settings.worker_concurrency))
    return 0


def _serve_metrics(address: str) -> None:
    """The worker's builds, cache and heartbeat as Prometheus metrics, from a thread (it
    serves only GET /metrics; a scraper reads it as it reads pf serve's)."""
    from prometheus_client import start_http_server

    host, _, port = address.rpartition(":")
    try:
        server, _thread = start_http_server(int(port), addr=host)
    except OSError as error:
        raise UsageError(
            f"cannot serve metrics on {address}: {error.strerror or error}",
            hint="choose another --metrics port, or stop the process that uses it",
        ) from error
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{server.server_port}/metrics"
    logging.getLogger("pf.worker").info(
        "pf worker metrics", extra={"url": url, "port": server.server_port}
    )
