"""``pf compile PATH... [--language L] [--target T] [-o DIR] [--json] [key=value ...]``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from pf._units import human_size
from pf.cli import _outputs
from pf.cli._argparse import ArgumentParser
from pf.cli.output import style
from pf.config import load_settings
from pf.engine import compile_sources
from pf.engine.projects import lead_first
from pf.errors import PfError, UsageError
from pf.toolchains import LANGUAGES, TARGETS, CompileRequest, Options, SourceFile, language_of
from pf.toolchains.base import OBJ_DIR, OUT_DIR


def _split(items: list[str]) -> tuple[list[Path], dict[str, str]]:
    paths: list[Path] = []
    options: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if eq and key.isidentifier() and not Path(item).exists():
            options[key] = value
        else:
            paths.append(Path(item))
    return paths, options


def _name(path: Path) -> str:
    """The name a source is compiled and reported under: as typed (``sub/bad.c``, so that
    diagnostics point at it) when that is a plain relative path, else its base name."""
    if path.is_absolute() or ".." in path.parts or path.parts[0] in (OBJ_DIR, OUT_DIR):
        return path.name  # not a name the scratch dir can hold as it is
    return path.as_posix()


def _sources(paths: list[Path]) -> tuple[SourceFile, ...]:
    sources = []
    # `pf compile *.rs` lists helper.rs before lib.rs: the crate root must lead.
    for path in map(Path, lead_first([str(p) for p in paths])):
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        sources.append(SourceFile(_name(path), content))
    names = [s.name for s in sources]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"two sources share the name {duplicates[0]!r}")
    return tuple(sources)


def command(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="pf compile",
        description="Compile sources with the real toolchain, through pf's cache.",
        epilog="Options: opt_level=0..3|s|z parallel=true passes=PIPELINE exports=a,b debug=true",
    )
    parser.add_argument("items", nargs="+", metavar="PATH|key=value")
    parser.add_argument("--language", "-l", choices=LANGUAGES)
    parser.add_argument("--target", "-t", default="wasm", choices=TARGETS)
    parser.add_argument("-o", "--output", type=Path, default=Path("."), help="output directory")
    parser.add_argument("--json", action="store_true", help="print the build record as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="show compiler output live")
    # Intermixed: `pf compile lib.rs --target llvm opt_level=s` has a key=value after a flag.
    args = parser.parse_intermixed_args(argv)
    paths, raw_options = _split(args.items)
    if not paths:
        raise UsageError("no source files given")
    language = args.language or language_of(paths[0].name)
    if language is None:
        raise UsageError(
            f"cannot tell the language of {paths[0]} from its extension",
            hint=f"pass --language ({', '.join(LANGUAGES)})",
        )
    if args.language is None:
        # One compile is one language: a .wat beside a .c would be fed to clang as C.
        others = [p for p in paths if language_of(p.name) not in (None, language)]
        if others:
            raise UsageError(
                f"{paths[0]} is {language} but {others[0]} is {language_of(others[0].name)}:"
                " one `pf compile` compiles one language",
                hint="run `pf compile` once per language, or `pf build DIR` for a whole project",
            )
    request = CompileRequest(language, args.target, _sources(paths), Options.parse(raw_options))
    settings = load_settings()
    _outputs.check_output_dir(args.output)

    def live(stream: str, text: str) -> None:
        print(text, file=sys.stderr if stream == "stderr" else sys.stdout)

    started = time.monotonic()
    try:
        result = compile_sources(request, settings, on_line=live if args.verbose else None)
    except PfError as error:
        if args.json:
            failed = _outputs.failed(language, args.target, error, time.monotonic() - started)
            print(json.dumps(failed, indent=2))
        raise
    written = _outputs.export(result, args.output)
    if args.json:
        print(json.dumps(_outputs.completed(result, written), indent=2))
        return 0
    for diagnostic in result.diagnostics:
        print(style(str(diagnostic), "yellow", sys.stderr), file=sys.stderr)
    how = style("cache hit", "green") if result.cached else "cache miss"
    print(f"compiled {language} -> {args.target} in {result.duration * 1000:.0f} ms ({how})")
    for path, artifact in zip(written, result.artifacts, strict=True):
        print(f"  {path}  ({human_size(artifact.size)})")
    if result.note:
        print(f"  note: {result.note}")
    return 0
