"""``pf cache stats [--json]``: the compile cache and the compiler caches of task runs."""

from __future__ import annotations

import json

from pf._units import human_size
from pf.cli._argparse import ArgumentParser
from pf.config import load_settings


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="pf cache", description="Show pf's caches.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    show = actions.add_parser(
        "stats",
        help="entries, size and hits of the compile cache, ccache and sccache",
        description="The compile cache (PF_CACHE_DIR) with the hits its build history "
        "records, and the ccache and sccache caches task runs use (PF_COMPILER_CACHE).",
    )
    show.add_argument("--json", action="store_true", help="the same as data")
    return parser


def command(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from pf._environ import environ
    from pf.engine.cachestats import report

    settings = load_settings()
    found = report(settings, environ())
    if args.json:
        print(json.dumps(found.to_dict(), indent=2))
        return 0
    used = found.usage
    print(f"compile cache  {found.directory}")
    print(f"  entries  {used.entries} ({used.blobs} blobs)")
    print(f"  size     {human_size(used.bytes)} of {human_size(found.max_bytes)}")
    if found.hits is None:
        print("  hits     - (no build history yet)")
    else:
        print(f"  hits     {found.hits} of {found.hits + (found.misses or 0)} completed compiles")
    if not found.compilers:
        print("compiler caches: off (PF_COMPILER_CACHE=off)")
    for stats in found.compilers:
        if not stats.installed:
            print(f"{stats.tool:<13}  not installed")
            continue
        print(f"{stats.tool:<13}  {stats.directory}")
        files = "" if stats.entries is None else f", {stats.entries} files"
        if stats.hits is None:
            print("  hits     - (counted by a running sccache server; none runs)")
        else:
            print(f"  hits     {stats.hits}, misses {stats.misses}")
        print(f"  size     {human_size(stats.bytes)} of {human_size(stats.max_bytes)}{files}")
    return 0
