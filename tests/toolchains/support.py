"""Compile through the engine and run the output: what every driver test does."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import wasmtime

from pf.config import Settings, load_settings
from pf.engine import BuildResult, compile_sources
from pf.engine.cache import Artifact
from pf.toolchains import (
    CompileRequest,
    Options,
    Plan,
    Run,
    SourceFile,
    Transform,
    driver_for_request,
)
from pf.toolchains.probe import locate
from pf.toolchains.tools import WAT2WASM


def fresh_settings(root: Path) -> Settings:
    """Settings whose cache (and everything else pf keeps) lives under ``root``."""
    return load_settings(
        environ={"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root)},
        overrides={"cache_dir": root / "cache"},
        toml_path=root / "absent.toml",
    )


def compile_files(
    settings: Settings, language: str, target: str, files: dict[str, bytes], **options: object
) -> BuildResult:
    sources = tuple(SourceFile(name, data) for name, data in files.items())
    request = CompileRequest(language, target, sources, Options.parse(options))
    return compile_sources(request, settings)


def unchecked(name: str, content: bytes) -> SourceFile:
    """A SourceFile whose name skipped the name rule: argv must be safe on its own."""
    source = object.__new__(SourceFile)
    object.__setattr__(source, "name", name)
    object.__setattr__(source, "content", content)
    return source


# Removed when the test process ends.
_FILES = tempfile.TemporaryDirectory(prefix="pf-test-outputs-")


def as_file(artifact: Artifact) -> Path:
    """The artifact as a file of its own, for the tools that run it: the cache keeps a
    small one in its database, not as a file."""
    target = Path(tempfile.mkdtemp(dir=_FILES.name)) / artifact.name
    artifact.copy_to(target)
    return target


def outputs(result: BuildResult) -> dict[str, Path]:
    return {artifact.name: as_file(artifact) for artifact in result.artifacts}


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


def run_plan(request: CompileRequest, settings: Settings, scratch: Path) -> Plan:
    """Run the plan of the request's driver (Emscripten for such C) in ``scratch`` with
    the real tools, outside the engine, and keep what the steps wrote there (the engine
    deletes its scratch dir). WAT is assembled by wat2wasm, as PF_WAT_ASSEMBLER=wat2wasm
    does: the resident assembler runs only under the engine."""
    plan = driver_for_request(request).plan(request).assembled_by(WAT2WASM)
    assert not plan.prebuilt, "prebuilt inputs are the engine's to place"
    for source in (*request.sources, *plan.extra_inputs):
        (scratch / source.name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / source.name).write_bytes(source.content)
    (scratch / "obj").mkdir(exist_ok=True)
    (scratch / "out").mkdir(exist_ok=True)
    binaries = {spec.name: locate(spec, settings) for spec in plan.tools}
    env = {"PATH": os.environ.get("PATH", os.defpath), "LC_ALL": "C.UTF-8", **plan.env}
    for step in plan.steps:
        if isinstance(step, Run):
            binary = binaries[step.argv[0]]
            assert binary, f"{step.argv[0]} is not installed"
            subprocess.run([binary, *step.argv[1:]], cwd=scratch, env=env, check=True)
        else:
            assert isinstance(step, Transform)  # assembled_by turned Assemble into Run
            step.func(scratch)
    return plan
