"""pf serve's application as an ASGI app factory, for ASGI servers started from their own
command line (procs_bench.py compares them): ``granian --factory asgiapp:app``.

The web root and projects come from PF_BENCH_ROOT and PF_BENCH_PROJECTS; the settings
from PF_* as for pf serve. Bench only: pf serve itself wires the app in server/run.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette

from pf.config import load_settings
from pf.engine.service import BuildService
from pf.server.app import create_app
from pf.server.run import static_app
from pf.store import Store


def app() -> Starlette:
    settings = load_settings()
    root = Path(os.environ["PF_BENCH_ROOT"])
    store = Store.for_settings(settings)
    store.open()
    service = BuildService(settings, store, Path(os.environ["PF_BENCH_PROJECTS"]))
    return create_app(settings, service, static_app(root, settings), root_dir=root)
