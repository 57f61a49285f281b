"""``pf check [FILE...]``: the strict reading of Pfyfiles, for CI.

Loading is lenient (``pf list`` and task runs go on past what the original pf
tolerated, and past a broken file beside the others); this command reports every
warning and every error with its file:line:col, and exits 1 if there is any.
Without FILE it checks the Pfyfile pf would use, with its includes and group
files; a FILE named is checked with its includes only.
"""

from __future__ import annotations

import sys

from pf.cli._argparse import ArgumentParser
from pf.cli.output import show_error, style
from pf.dsl import DslError, parse_file


def _problems(path: str, siblings: bool) -> list[DslError]:
    try:
        pfyfile = parse_file(path, siblings=siblings, keep_going=siblings)
    except DslError as error:
        return [error]
    return [*pfyfile.errors.values(), *pfyfile.warnings]


def command(argv: list[str]) -> int:
    parser = ArgumentParser(prog="pf check", description=__doc__)
    parser.add_argument("files", nargs="*", metavar="FILE", help="Pfyfiles to check")
    args = parser.parse_args(argv)
    from pf.cli.run import find_or_fail, split_globals

    if args.files:
        found = [(path, False) for path in args.files]
    else:
        found = [(find_or_fail(split_globals([])[0]), True)]
    problems: list[DslError] = []
    seen: set[tuple[str, str]] = set()
    for path, siblings in found:
        for problem in _problems(path, siblings):
            key = (str(problem.span), problem.kind)
            if key not in seen:  # a file included by two of the files named
                seen.add(key)
                problems.append(problem)
    for problem in problems:
        show_error(problem)
    errors = sum(1 for p in problems if p.severity == "error")
    warnings = len(problems) - errors
    files = len(found)
    if not problems:
        print(f"pf check: {files} file{'s' * (files != 1)} ok", file=sys.stderr)
        return 0
    text = (
        f"pf check: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    )
    print(style(text, "red" if errors else "yellow", sys.stderr), file=sys.stderr)
    return 1
