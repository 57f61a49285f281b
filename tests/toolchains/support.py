"""Compile through the engine and run the output: what every driver test does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import wasmtime

from pf.config import Settings
from pf.engine import BuildResult, compile_sources
from pf.toolchains import CompileRequest, Options, SourceFile


def compile_files(
    settings: Settings, language: str, target: str, files: dict[str, bytes], **options: object
) -> BuildResult:
    sources = tuple(SourceFile(name, data) for name, data in files.items())
    request = CompileRequest(language, target, sources, Options.parse(options))
    return compile_sources(request, settings)


def outputs(result: BuildResult) -> dict[str, Path]:
    return {artifact.name: artifact.path for artifact in result.artifacts}


def instantiate(
    path: Path, stdout: Path | None = None, stderr: Path | None = None
) -> tuple[wasmtime.Store, dict[str, Any]]:
    """Instantiate a module, with WASI when it imports anything; a reactor is initialised."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    module = wasmtime.Module.from_file(engine, str(path))
    if module.imports:
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        config = wasmtime.WasiConfig()
        if stdout is not None:
            config.stdout_file = str(stdout)
        if stderr is not None:
            config.stderr_file = str(stderr)
        store.set_wasi(config)
        instance = linker.instantiate(store, module)
    else:
        instance = wasmtime.Instance(store, module, [])
    exports = dict(instance.exports(store).items())
    if "_initialize" in exports:  # a reactor must run its constructors first
        exports["_initialize"](store)
    return store, exports


def function_exports(path: Path) -> set[str]:
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(path))
    return {e.name for e in module.exports if isinstance(e.type, wasmtime.FuncType)}
