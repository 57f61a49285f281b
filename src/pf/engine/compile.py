"""Compile one request: driver plan -> action key -> cache hit, or sandboxed run -> cache.

This is the only path by which pf runs a compiler. The scratch directory holds the
sources under the user's own names, so argv and diagnostics carry no temporary paths;
whatever absolute scratch path a tool prints anyway is masked before anyone sees it.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pf.config import Settings
from pf.engine.cache import ActionCache, Artifact, Entry
from pf.engine.keys import action_key
from pf.engine.singleflight import flight
from pf.errors import BuildCancelled, BuildTimeout, CompileFailed, Diagnostic
from pf.sandbox import Completed, Limits, LineSink, run
from pf.toolchains import CompileRequest, Driver, Plan, Run, ToolInfo, driver_for
from pf.toolchains.base import OBJ_DIR, OUT_DIR
from pf.toolchains.diagnostics import mask_paths
from pf.toolchains.probe import detect, locate
from pf.toolchains.tools import CCACHE

PhaseSink = Callable[[str], None]
"""Receives each phase label ("compile", "link", ...) as a build enters it."""

_TAIL_LINES = 25


@dataclass(frozen=True)
class BuildResult:
    """What a compile produced, whether it ran or came from the cache."""

    key: str
    language: str
    target: str
    cached: bool
    artifacts: tuple[Artifact, ...]
    log: tuple[tuple[str, str], ...]
    diagnostics: tuple[Diagnostic, ...]
    duration: float
    tools: tuple[ToolInfo, ...]
    note: str | None = None
    timings: Mapping[str, float] = field(default_factory=dict)

    def export(self, dest: Path) -> list[Path]:
        """Copy the artifacts into ``dest``; returns the written paths."""
        dest.mkdir(parents=True, exist_ok=True)
        written = []
        for artifact in self.artifacts:
            target = dest / artifact.name
            shutil.copyfile(artifact.path, target)
            written.append(target)
        return written

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "language": self.language,
            "target": self.target,
            "cached": self.cached,
            "duration": round(self.duration * 1000, 3),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "diagnostics": [d.to_dict() for d in self.diagnostics],
            "tools": {t.name: t.version for t in self.tools},
            "note": self.note,
            "timings": {k: round(v * 1000, 3) for k, v in self.timings.items()},
        }


def _tool_env(plan: Plan) -> dict[str, str]:
    # Only what tools read and what changes their output goes into the key: PATH and
    # HOME differ between machines that would produce identical results.
    return {"LC_ALL": "C.UTF-8", **plan.env}


def _failure(driver: Driver, step: Run, done: Completed, scratch: str) -> CompileFailed:
    stderr = mask_paths(done.stderr, scratch)
    diagnostics = driver.diagnostics(stderr)
    lines = (stderr or mask_paths(done.stdout, scratch)).rstrip("\n").splitlines()
    tail = lines[-_TAIL_LINES:]
    framed = "\n".join([f"[{len(tail)} lines of output]", *tail, "[end of output]"])
    return CompileFailed(
        f"{step.label} failed: {step.argv[0]} exited with code {done.code}",
        diagnostics=diagnostics,
        log=framed,
        hint="the output above came from the compiler, not from pf",
    )


class _Execution:
    """One run of a plan in a scratch directory."""

    def __init__(
        self,
        driver: Driver,
        request: CompileRequest,
        plan: Plan,
        tools: dict[str, ToolInfo],
        settings: Settings,
        on_line: LineSink | None,
        on_phase: PhaseSink | None,
        ccache_dir: Path,
        cancel: threading.Event | None,
    ) -> None:
        self.ccache_dir = ccache_dir
        self.cancel = cancel
        self.driver = driver
        self.request = request
        self.plan = plan
        self.tools = tools
        self.settings = settings
        self.on_line = on_line
        self.on_phase = on_phase
        self.log: list[tuple[str, str]] = []
        self.timings: dict[str, float] = {}

    def _sink(self, scratch: str) -> LineSink:
        def sink(stream: str, text: str) -> None:
            masked = mask_paths(text, scratch)
            self.log.append((stream, masked))
            if self.on_line is not None:
                self.on_line(stream, masked)

        return sink

    def _argv(self, step: Run, ccache: str | None) -> list[str]:
        argv = [self.tools[step.argv[0]].path, *step.argv[1:]]
        if step.ccache and ccache is not None:
            argv.insert(0, ccache)
        return argv

    def execute(self, scratch: Path) -> list[tuple[str, str, Path]]:
        for source in (*self.request.sources, *self.plan.extra_inputs):
            path = scratch / source.name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source.content)
        (scratch / OBJ_DIR).mkdir(exist_ok=True)
        (scratch / OUT_DIR).mkdir(exist_ok=True)
        env = {**self.settings.base_env, **_tool_env(self.plan)}
        ccache = locate(CCACHE, self.settings) if self.settings.ccache else None
        if ccache:
            env.setdefault("CCACHE_DIR", str(self.ccache_dir))
            # Depend mode skips ccache's extra preprocessor run on a miss (drivers pass
            # -MD); scratch sources are always freshly written, so their mtimes say nothing.
            env.update(CCACHE_DEPEND="1", CCACHE_SLOPPINESS="include_file_mtime,include_file_ctime")
        limits = Limits.from_settings(self.settings)
        sink = self._sink(str(scratch))
        for step in self.plan.steps:
            if self.cancel is not None and self.cancel.is_set():
                raise BuildCancelled(f"{self.request.language} -> {self.request.target} build")
            if self.on_phase is not None:
                self.on_phase(step.label)
            started = time.monotonic()
            if isinstance(step, Run):
                done = run(
                    self._argv(step, ccache),
                    cwd=scratch,
                    env=env,
                    limits=limits,
                    on_line=sink,
                    cancel=self.cancel,
                )
                if done.cancelled:
                    raise BuildCancelled(f"{self.request.language} -> {self.request.target} build")
                if done.timed_out:
                    what = f"{step.label} ({step.argv[0]})"
                    raise BuildTimeout(what, self.settings.build_timeout)
                if done.code != 0:
                    raise _failure(self.driver, step, done, str(scratch))
            else:
                step.func(scratch)
            self.timings[step.label] = self.timings.get(step.label, 0.0) + (
                time.monotonic() - started
            )
        outputs = []
        for output in self.plan.outputs:
            produced = scratch / output.path
            if not produced.is_file():
                raise CompileFailed(
                    f"the toolchain reported success but produced no {output.path}",
                    hint="this is a bug in pf, please report it",
                )
            outputs.append((output.name, output.kind, produced))
        return outputs


def _result(
    request: CompileRequest,
    entry: Entry,
    cached: bool,
    tools: dict[str, ToolInfo],
    duration: float,
    timings: Mapping[str, float],
) -> BuildResult:
    return BuildResult(
        key=entry.key,
        language=request.language,
        target=request.target,
        cached=cached,
        artifacts=entry.artifacts,
        log=entry.log,
        diagnostics=tuple(Diagnostic(**d) for d in entry.diagnostics),
        duration=duration,
        tools=tuple(tools.values()),
        note=entry.note,
        timings=timings,
    )


def _prepare(
    request: CompileRequest, settings: Settings
) -> tuple[Driver, Plan, dict[str, ToolInfo], str]:
    driver = driver_for(request.language, request.target)
    plan = driver.plan(request)
    tools = {spec.name: detect(spec, settings) for spec in plan.tools}
    key = action_key(
        driver.id,
        request.target,
        tools.values(),
        plan,
        _tool_env(plan),
        (*request.sources, *plan.extra_inputs),
    )
    return driver, plan, tools, key


def lookup(
    request: CompileRequest, settings: Settings, *, cache: ActionCache | None = None
) -> BuildResult | None:
    """The cached result of ``request`` without running anything, or None on a miss.

    The build service asks this first, so a hit is answered at once instead of waiting
    for a worker behind compiles that miss. Raises what compile_sources raises before a
    compiler would start (bad request, missing toolchain).
    """
    started = time.monotonic()
    _driver, _plan, tools, key = _prepare(request, settings)
    cache = cache or ActionCache(settings.cache_dir, settings.cache_max_bytes)
    entry = cache.lookup(key)
    if entry is None:
        return None
    return _result(request, entry, True, tools, time.monotonic() - started, {})


def compile_sources(
    request: CompileRequest,
    settings: Settings,
    *,
    cache: ActionCache | None = None,
    on_line: LineSink | None = None,
    on_phase: PhaseSink | None = None,
    cancel: threading.Event | None = None,
) -> BuildResult:
    """Compile ``request``, from the cache when an identical action has run before.

    Raises UnsupportedLanguage/UnsupportedTarget/InvalidOption for bad requests,
    ToolchainMissing when a tool is not installed, CompileFailed (with diagnostics) when
    the compiler rejects the sources, BuildTimeout when it runs too long, and
    BuildCancelled when ``cancel`` is set while it runs (its process group is killed).
    """
    started = time.monotonic()
    driver, plan, tools, key = _prepare(request, settings)
    cache = cache or ActionCache(settings.cache_dir, settings.cache_max_bytes)
    entry = cache.lookup(key)
    if entry is not None:
        return _result(request, entry, True, tools, time.monotonic() - started, {})
    with flight(cache.root / "locks", key):
        entry = cache.lookup(key)
        if entry is not None:
            return _result(request, entry, True, tools, time.monotonic() - started, {})
        execution = _Execution(
            driver,
            request,
            plan,
            tools,
            settings,
            on_line,
            on_phase,
            cache.root.resolve() / "ccache",
            cancel,
        )
        scratch = Path(tempfile.mkdtemp(prefix="build-", dir=cache.root / "tmp"))
        try:
            outputs = execution.execute(scratch)
            stored = time.monotonic()
            diagnostics = driver.diagnostics(
                "\n".join(text for stream, text in execution.log if stream == "stderr")
            )
            entry = cache.store(
                key,
                outputs,
                execution.log,
                [d.to_dict() for d in diagnostics],
                plan.note,
                stored - started,
            )
            execution.timings["store"] = time.monotonic() - stored
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return _result(request, entry, False, tools, time.monotonic() - started, execution.timings)
