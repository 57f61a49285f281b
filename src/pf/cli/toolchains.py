"""``pf toolchains``: the tool and version serving each language x target, or how to install it.

The rows of variant drivers (C with Emscripten) follow, their language marked with the
driver: ``c/emscripten -> wasm``.
"""

from __future__ import annotations

import json

from pf.cli._argparse import ArgumentParser
from pf.cli.output import style
from pf.config import load_settings
from pf.toolchains.matrix import matrix, variants


def command(argv: list[str]) -> int:
    parser = ArgumentParser(prog="pf toolchains", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the matrix as JSON")
    args = parser.parse_args(argv)
    settings = load_settings()
    rows = [*matrix(settings), *variants(settings)]
    if args.json:
        print(json.dumps([row.to_dict() for row in rows], indent=2))
        return 0
    for row in rows:
        language = f"{row.language}/{row.driver}" if row.driver else row.language
        pair = f"{language:<8} -> {row.target:<5}"
        if row.available:
            print(f"{pair} {style('ok', 'green')}  {row.tool} {row.version} ({row.path})")
        else:
            print(f"{pair} {style('missing', 'red')}  {row.reason}")
            if row.install:
                print(f"{'':<{len(pair) + 1}} install: {row.install}")
    return 0
