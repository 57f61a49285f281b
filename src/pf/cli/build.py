"""``pf build [PROJECT] [--language L|all] [--target T|all] [-o DIR] [--json] [key=value ...]``.

Builds every language of a project for the chosen targets and prints what it built. The
outputs go where the original's build put them (engine.layout): ``web/<target>/<source
folder>/``, e.g. ``web/wasm/asm/mini.wasm`` for WAT that lives in ``asm/``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pf._units import human_size
from pf.cli import _outputs
from pf.cli._argparse import ArgumentParser
from pf.cli.output import show_error, style
from pf.config import load_settings
from pf.engine import compile_sources
from pf.engine.layout import source_folder
from pf.engine.projects import discover, request_for
from pf.errors import PfError, UsageError
from pf.toolchains import EXTENSIONS, LANGUAGES, TARGETS, Options


def _looked_for() -> str:
    """``.rs (rust), .c .h (c), ...``: the extensions pf build recognises, by language."""
    by_language = {
        lang: [ext for ext, of in EXTENSIONS.items() if of == lang] for lang in LANGUAGES
    }
    return ", ".join(f"{' '.join(exts)} ({lang})" for lang, exts in by_language.items())


def command(argv: list[str]) -> int:
    parser = ArgumentParser(prog="pf build", description=__doc__)
    parser.add_argument("items", nargs="*", metavar="PROJECT|key=value")
    parser.add_argument("--language", "-l", default="all", choices=[*LANGUAGES, "all"])
    parser.add_argument("--target", "-t", default="all", choices=[*TARGETS, "all"])
    parser.add_argument("-o", "--output", type=Path, help="output directory (default PROJECT/web)")
    parser.add_argument("--json", action="store_true", help="print the build records as JSON")
    # Intermixed: `pf build demo --target wasm opt_level=3` has a key=value after a flag.
    args = parser.parse_intermixed_args(argv)
    options = {k: v for k, _, v in (i.partition("=") for i in args.items if "=" in i)}
    places = [i for i in args.items if "=" not in i]
    if len(places) > 1:
        raise UsageError("give at most one project directory")
    project = discover(Path(places[0] if places else "."))
    if not project.sources:
        raise UsageError(
            f"no sources of any language were found under {project.path}",
            hint=f"pf build looks for {_looked_for()}",
        )
    parsed = Options.parse(options)
    languages = project.languages if args.language == "all" else [args.language]
    targets = list(TARGETS) if args.target == "all" else [args.target]
    output = args.output or project.path / "web"
    _outputs.check_output_dir(output)
    settings = load_settings()
    records: list[dict[str, object]] = []
    failures = 0
    for language in languages:
        for target in targets:
            request = request_for(project, language, target, parsed)
            started = time.monotonic()
            try:
                result = compile_sources(request, settings)
            except PfError as error:
                failures += 1
                records.append(_outputs.failed(language, target, error, time.monotonic() - started))
                print(f"{language} -> {target}: ", end="", file=sys.stderr)
                show_error(error)
                continue
            folder = source_folder(project, language)
            written = _outputs.export(result, output / target / folder)
            records.append(_outputs.completed(result, written))
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
        built = len(records) - failures
        print(f"built {built} of {len(records)} for project {project.name}")
    return 1 if failures else 0
