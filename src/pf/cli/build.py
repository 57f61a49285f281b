"""``pf build [PROJECT] [--language L|all] [--target T|all] [-o DIR] [key=value ...]``.

Builds every language of a project for the chosen targets and prints what it built.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pf._units import human_size
from pf.cli._argparse import ArgumentParser
from pf.cli.output import show_error, style
from pf.config import load_settings
from pf.engine import compile_sources
from pf.engine.projects import discover, request_for
from pf.errors import PfError, UsageError
from pf.toolchains import LANGUAGES, TARGETS, Options


def command(argv: list[str]) -> int:
    parser = ArgumentParser(prog="pf build", description=__doc__)
    parser.add_argument("items", nargs="*", metavar="PROJECT|key=value")
    parser.add_argument("--language", "-l", default="all", choices=[*LANGUAGES, "all"])
    parser.add_argument("--target", "-t", default="all", choices=[*TARGETS, "all"])
    parser.add_argument("-o", "--output", type=Path, help="output directory (default PROJECT/web)")
    parser.add_argument("--json", action="store_true", help="print the build records as JSON")
    args = parser.parse_args(argv)
    options = {k: v for k, _, v in (i.partition("=") for i in args.items if "=" in i)}
    places = [i for i in args.items if "=" not in i]
    if len(places) > 1:
        raise UsageError("give at most one project directory")
    project = discover(Path(places[0] if places else "."))
    parsed = Options.parse(options)
    languages = project.languages if args.language == "all" else [args.language]
    targets = list(TARGETS) if args.target == "all" else [args.target]
    output = args.output or project.path / "web"
    settings = load_settings()
    records, failures = [], 0
    for language in languages:
        for target in targets:
            request = request_for(project, language, target, parsed)
            try:
                result = compile_sources(request, settings)
            except PfError as error:
                failures += 1
                print(f"{language} -> {target}: ", end="", file=sys.stderr)
                show_error(error)
                continue
            written = result.export(output / target / language)
            record = {**result.to_dict(), "outputs": [str(p) for p in written]}
            records.append(record)
            if not args.json:
                how = (
                    style("cached", "green")
                    if result.cached
                    else f"{result.duration * 1000:.0f} ms"
                )
                files = ", ".join(
                    f"{p} ({human_size(a.size)})"
                    for p, a in zip(written, result.artifacts, strict=True)
                )
                print(f"{language:<8} -> {target:<5} {how:>8}  {files}")
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(f"built {len(records)} of {len(records) + failures} for project {project.name}")
    return 1 if failures else 0
