"""The engine behind the task verb ``compile``: a CompileCall -> one cached compile per language.

pf.tasks may not import pf.engine (docs/architecture.md's layers: the engine sits above tasks),
so the caller hands :func:`compile_hook` to the executor as its ``compile`` hook: the
CLI as it is, pf serve's task runs bound to the service's settings, action cache,
cancel Event and live log (:func:`bind_hook`). The CLI imports this module only when
a task reaches a ``compile`` line: the engine and the toolchain drivers cost tens of
milliseconds that other tasks need not pay.

Sources are grouped by language (from the extension, unless ``language=`` is given)
and each group is one compile request, named relative to the group's common
directory so diagnostics read ``c/math.c:3:5`` as with ``pf build``; the outputs are
exported into ``out``, and two groups whose outputs share a name are refused before
either compiles. Without Settings given, a relative ``PF_CACHE_DIR`` is taken
relative to the Pfyfile's directory, beside the task state under ``.pf/``, wherever
pf was started. Imports engine.compile, engine.cache, toolchains, tasks, config and
errors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from pf._units import human_size
from pf.config import Settings, load_settings
from pf.engine.cache import ActionCache
from pf.engine.compile import BuildResult, compile_sources
from pf.engine.projects import lead_first
from pf.errors import UsageError
from pf.sandbox import LineSink
from pf.tasks.executor import CompileCall
from pf.toolchains import (
    LANGUAGES,
    CompileRequest,
    Options,
    SourceFile,
    driver_for_request,
    language_of,
)


def _groups(call: CompileCall) -> dict[str, list[str]]:
    """The sources by language, each group's lead (the file naming its outputs) first."""
    groups: dict[str, list[str]] = {}
    for path in call.sources:
        language = call.language or language_of(path)
        if language is None:
            raise UsageError(
                f"compile: cannot tell the language of {path} from its extension",
                hint=f"add language= ({', '.join(LANGUAGES)})",
            )
        groups.setdefault(language, []).append(path)
    return {language: lead_first(paths) for language, paths in groups.items()}


def _request(language: str, target: str, paths: list[str], options: Options) -> CompileRequest:
    base = os.path.commonpath([os.path.dirname(p) for p in paths])
    files = []
    for path in paths:
        try:
            content = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"compile: cannot read {path}: {exc.strerror or exc}") from exc
        files.append(SourceFile(Path(os.path.relpath(path, base)).as_posix(), content))
    return CompileRequest(language, target, tuple(files), options)


def _refuse_shared_outputs(
    groups: dict[str, list[str]], requests: list[CompileRequest], call: CompileCall
) -> None:
    """A usage error when two languages' compiles would write the same file into ``out``.

    Checked before anything compiles: exporting both would leave only the one that
    finished last, and with ``jobs=`` which one that is depends on timing.
    """
    writers: dict[str, str] = {}
    for paths, request in zip(groups.values(), requests, strict=True):
        lead = paths[0]
        for output in driver_for_request(request).plan(request).outputs:
            first = writers.setdefault(output.name, lead)
            if first != lead:
                shown = [os.path.relpath(p, call.cwd) for p in (first, lead)]
                written = os.path.relpath(os.path.join(call.out, output.name), call.cwd)
                raise UsageError(
                    f"compile: {shown[0]} and {shown[1]} would both write {written}",
                    hint="give them different names, or put them on separate compile "
                    "lines with their own out=",
                )


def _lines(result: BuildResult, written: list[Path], cwd: str) -> list[str]:
    how = "cache hit" if result.cached else f"{result.duration * 1000:.0f} ms"
    lines = [f"{result.language} -> {result.target} ({how})"]
    for path, artifact in zip(written, result.artifacts, strict=True):
        shown = os.path.relpath(path, cwd)
        lines.append(f"  {shown}  ({human_size(artifact.size)})")
    lines += [f"  {diagnostic}" for diagnostic in result.diagnostics]
    if result.note:
        lines.append(f"  note: {result.note}")
    return lines


def compile_hook(
    call: CompileCall,
    *,
    settings: Settings | None = None,
    cache: ActionCache | None = None,
    cancel: threading.Event | None = None,
    on_line: LineSink | None = None,
) -> list[str]:
    """Compile ``call``'s sources through the engine's cache; the lines to print.

    ``on_line`` receives the compilers' output live (the CLI prints only the summary
    lines returned); ``cancel`` kills a running compile (BuildCancelled).
    """
    if settings is None:
        settings = load_settings()
        if not settings.cache_dir.is_absolute():
            settings = replace(settings, cache_dir=Path(call.cwd) / settings.cache_dir)
    options = Options.parse(call.options)
    groups = _groups(call)
    requests = [
        _request(language, call.target, paths, options) for language, paths in groups.items()
    ]
    _refuse_shared_outputs(groups, requests, call)
    out = Path(call.out)

    def one(request: CompileRequest) -> BuildResult:
        return compile_sources(request, settings, cache=cache, on_line=on_line, cancel=cancel)

    if call.jobs and call.jobs > 1 and len(requests) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=call.jobs) as pool:
            results = list(pool.map(one, requests))
    else:
        results = [one(request) for request in requests]
    lines: list[str] = []
    for result in results:
        lines += _lines(result, result.export(out), call.cwd)
    return lines


def bind_hook(
    settings: Settings,
    cache: ActionCache | None,
    cancel: threading.Event | None,
    on_line: LineSink | None,
) -> Callable[[CompileCall], list[str]]:
    """A ``compile`` hook for one task run of pf serve: its settings, cache, cancel and log."""
    return partial(compile_hook, settings=settings, cache=cache, cancel=cancel, on_line=on_line)
