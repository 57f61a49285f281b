"""Compile one request: driver plan -> action key -> cache hit, or sandboxed run -> cache.

This is the only path by which pf runs a compiler. The scratch directory holds the
sources under the user's own names, so argv and diagnostics carry no temporary paths;
whatever absolute scratch path a tool prints anyway is masked before anyone sees it. A
plan of Assemble steps alone needs no directory: the resident assembler gets the
source's bytes and its file name, and the module's bytes go straight to the store.

Every step of a plan runs confined (pf.sandbox, ``PF_SANDBOX``): it sees the system's
``/usr``, its tools' install prefixes and the scratch directory, which is the only place
it may write. What it leaves there is hostile: before pf's own in-process steps read the
scratch dir, and before outputs go to the store, the tree is checked, and a link or
special file fails the build instead of being followed. Confined steps run without
ccache, whose cache other builds share; the action cache still caches whole actions.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import queue
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pf.config import Settings
from pf.engine import depfiles
from pf.engine.assemble import assemble
from pf.engine.cache import ActionCache, Artifact, Entry
from pf.engine.keys import Action, action_key
from pf.engine.singleflight import flight
from pf.errors import BuildCancelled, BuildTimeout, CompileFailed, Diagnostic
from pf.sandbox import (
    Completed,
    Limits,
    LineSink,
    Space,
    confined,
    hand_over,
    sandbox_uid,
    truncation_marker,
)
from pf.store import digest_file
from pf.toolchains import (
    CompileRequest,
    Driver,
    Plan,
    Run,
    SourceFile,
    ToolInfo,
    driver_for_request,
)
from pf.toolchains.base import OBJ_DIR, OUT_DIR, Assemble, Step
from pf.toolchains.diagnostics import mask_paths
from pf.toolchains.probe import detect, locate
from pf.toolchains.tools import CCACHE, as_configured

PhaseSink = Callable[[str, int], None]
"""Receives each phase label ("compile", "link", ...) as a build enters it, with the
index in the plan of the phase's first step."""

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
            artifact.copy_to(target)
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
    return _rejected(
        driver,
        f"{step.label} failed: {step.argv[0]} exited with code {done.code}",
        mask_paths(done.stderr, scratch),
        mask_paths(done.stdout, scratch),
    )


def _rejected(driver: Driver, message: str, stderr: str, stdout: str = "") -> CompileFailed:
    """A failed compile, with the diagnostics of the tool's ``stderr`` and the tail of
    what it printed (its stdout when its stderr is empty)."""
    diagnostics = driver.diagnostics(stderr)
    tail = (stderr or stdout).rstrip("\n").splitlines()[-_TAIL_LINES:]
    framed = "\n".join([f"[{len(tail)} lines of output]", *tail, "[end of output]"])
    return CompileFailed(
        message,
        diagnostics=diagnostics,
        log=framed,
        hint="the output above came from the compiler, not from pf",
    )


def _action(
    driver: Driver,
    target: str,
    what: str,
    plan: Plan,
    inputs: tuple[SourceFile, ...],
    settings: Settings,
) -> Action:
    tools = {spec.name: detect(spec, settings) for spec in plan.tools}
    # A prebuilt input's key names it, not the request's target: the same runtime
    # object serves every target that links it.
    prebuilt = tuple(
        _action(driver, item.name, item.name, item.plan, item.plan.extra_inputs, settings)
        for item in plan.prebuilt
    )
    # The sandbox mode is part of the key: an unconfined run may have read host files
    # (an #include of an absolute path), and its result must never answer a confined one.
    key = action_key(
        driver.id,
        target,
        tools.values(),
        plan,
        {**_tool_env(plan), "pf-sandbox": settings.sandbox},
        inputs,
        [p.key for p in prebuilt],
    )
    return Action(what, plan, tools, inputs, prebuilt, key)


class _Sweeper:
    """Deletes finished scratch directories on a thread of its own.

    Removing a scratch dir (a few unlinks and rmdirs) takes 3-6 ms on a disk mounted
    with ``discard``, and nothing waits for it: the outputs are in the store by then.
    So the result goes back at once and one daemon thread deletes behind it; the
    interpreter waits for that thread's queue at exit, so a finished ``pf`` process
    leaves no scratch dir behind.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[Path] = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def discard(self, path: Path) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._work, name="pf-scratch-sweeper", daemon=True
                )
                self._thread.start()
                atexit.register(self.wait)
        self._queue.put(path)

    def wait(self) -> None:
        """Return once every scratch dir handed over so far is deleted."""
        self._queue.join()

    def _work(self) -> None:
        while True:
            path = self._queue.get()
            try:
                shutil.rmtree(path, ignore_errors=True)
            finally:
                self._queue.task_done()


_sweeper = _Sweeper()


# How pf runs ccache. Depend mode skips ccache's extra preprocessor run on a miss (drivers
# pass -MD); scratch sources are always freshly written, so their mtimes say nothing. The
# inode cache saves re-hashing the same system headers on every miss (keyed by device,
# inode, size and times, so a changed header is seen): 4.5M instead of 6.4M instructions
# per miss of a wasm2c file (callgrind).
CCACHE_ENV = {
    "CCACHE_DEPEND": "1",
    "CCACHE_SLOPPINESS": "include_file_mtime,include_file_ctime",
    "CCACHE_INODECACHE": "1",
}


class _Execution:
    """One run of an action's plan in a scratch directory."""

    def __init__(
        self,
        driver: Driver,
        action: Action,
        settings: Settings,
        on_line: LineSink | None,
        on_phase: PhaseSink | None,
        ccache_dir: Callable[[], Path],
        cancel: threading.Event | None,
    ) -> None:
        self.ccache_dir = ccache_dir
        self.cancel = cancel
        self.driver = driver
        self.action = action
        self.settings = settings
        self.on_line = on_line
        self.on_phase = on_phase
        self.log: list[tuple[str, str]] = []
        self.timings: dict[str, float] = {}
        # Bytes of each stream kept in the log, which goes into the build record and the
        # manifest: capped like the sandbox's capture, with its marker. Listeners still
        # receive every line.
        self._kept = {"stdout": 0, "stderr": 0}
        self._cut: set[str] = set()
        self._phase: str | None = None

    def _sink(self, scratch: str | None) -> LineSink:
        """Keeps and passes on output lines, ``scratch`` (where there is one) masked."""
        limit = self.settings.max_buffer

        def sink(stream: str, text: str) -> None:
            masked = text if scratch is None else mask_paths(text, scratch)
            if stream not in self._cut:
                size = self._kept.get(stream, 0) + len(masked.encode()) + 1
                if size > limit:
                    self._cut.add(stream)
                    self.log.append((stream, truncation_marker(limit)))
                else:
                    self._kept[stream] = size
                    self.log.append((stream, masked))
            if self.on_line is not None:
                self.on_line(stream, masked)

        return sink

    def _env(self) -> tuple[dict[str, str], str | None]:
        env = {**self.settings.base_env, **_tool_env(self.action.plan)}
        # A confined compile must not write to a cache other builds read (poisoning
        # across clients), so ccache only serves unconfined ones.
        shared = self.settings.ccache and self.settings.sandbox == "off"
        ccache = locate(CCACHE, self.settings) if shared else None
        if ccache:
            env.setdefault("CCACHE_DIR", str(self.ccache_dir()))
            env.update(CCACHE_ENV)
        return env, ccache

    def _argv(self, step: Run, ccache: str | None) -> list[str]:
        argv = [self.action.tools[step.argv[0]].path, *step.argv[1:]]
        if step.ccache and ccache is not None:
            argv.insert(0, ccache)
        return argv

    def execute(
        self, space: Space, prebuilt: Sequence[tuple[Plan, Entry]]
    ) -> list[tuple[str, str, Path | bytes]]:
        scratch = space.path
        for source in self.action.inputs:
            path = scratch / source.name
            if path.parent != scratch:
                path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source.content)
        (scratch / OBJ_DIR).mkdir(exist_ok=True)
        (scratch / OUT_DIR).mkdir(exist_ok=True)
        for plan, entry in prebuilt:
            for output, artifact in zip(plan.outputs, entry.artifacts, strict=True):
                placed = scratch / output.path
                placed.parent.mkdir(parents=True, exist_ok=True)
                # A copy, not a link: a tool writing to its input must not reach the store.
                artifact.copy_to(placed)
        env, ccache = self._env()
        limits = Limits.from_settings(self.settings)
        sink = self._sink(str(scratch))
        uid = sandbox_uid(self.settings)
        # Where nothing runs confined, only pf writes: there is nothing to check.
        confines = self.action.plan.runs_processes
        for index, step in enumerate(self.action.plan.steps):
            started = self._enter(step, index)
            # Between steps nothing confined runs, so what is checked here stays so
            # while pf reads it; what pf wrote goes to the sandbox's uid.
            if confines:
                _check_scratch(scratch, uid, step.label)
            if isinstance(step, Run):
                done = space.run(
                    self._argv(step, ccache),
                    env=env,
                    limits=limits,
                    on_line=sink,
                    cancel=self.cancel,
                )
                if done.cancelled:
                    raise BuildCancelled(self.action.what)
                if done.timed_out:
                    what = f"{step.label} ({step.argv[0]})"
                    raise BuildTimeout(what, self.settings.build_timeout)
                if done.code != 0:
                    raise _failure(self.driver, step, done, str(scratch))
            elif isinstance(step, Assemble):
                written = scratch / step.output
                written.parent.mkdir(parents=True, exist_ok=True)
                written.write_bytes(
                    self._assemble(step, (scratch / step.source).read_bytes(), sink)
                )
            else:
                step.func(scratch)
            self._spent(step, started)
        if confines:
            _check_scratch(scratch, uid, "store")
        outputs: list[tuple[str, str, Path | bytes]] = []
        for output in self.action.plan.outputs:
            produced = scratch / output.path
            if not _regular(produced):
                raise CompileFailed(
                    f"the toolchain reported success but produced no {output.path}",
                    hint="this is a bug in pf, please report it",
                )
            outputs.append((output.name, output.kind, produced))
        return outputs

    def execute_in_memory(self) -> list[tuple[str, str, Path | bytes]]:
        """Run a plan that needs no directory (``Plan.in_memory``): every step's input
        and output are bytes held here, and the outputs go to the store as such."""
        files = {source.name: source.content for source in self.action.inputs}
        sink = self._sink(None)
        for index, step in enumerate(self.action.plan.steps):
            assert isinstance(step, Assemble)  # what in_memory means
            started = self._enter(step, index)
            files[step.output] = self._assemble(step, files[step.source], sink)
            self._spent(step, started)
        outputs: list[tuple[str, str, Path | bytes]] = []
        for output in self.action.plan.outputs:
            if output.path not in files:
                raise CompileFailed(
                    f"the toolchain reported success but produced no {output.path}",
                    hint="this is a bug in pf, please report it",
                )
            outputs.append((output.name, output.kind, files[output.path]))
        return outputs

    def _enter(self, step: Step, index: int) -> float:
        """Start ``step`` unless the build was cancelled; returns when it started."""
        if self.cancel is not None and self.cancel.is_set():
            raise BuildCancelled(self.action.what)
        # A phase is a label: the steps that share one (pf's own work on the files
        # beside the tool it prepares for) are one phase, announced as the first starts.
        # Every announcement is a record and an event for each watcher of pf serve.
        if self.on_phase is not None and step.label != self._phase:
            self._phase = step.label
            self.on_phase(step.label, index)
        return time.monotonic()

    def _spent(self, step: Step, started: float) -> None:
        self.timings[step.label] = self.timings.get(step.label, 0.0) + (time.monotonic() - started)

    def _assemble(self, step: Assemble, source: bytes, sink: LineSink) -> bytes:
        """The wasm the resident assembler makes of ``source``. Its errors name the
        file as the request does: it never sees a scratch path."""
        assembled = assemble(
            step,
            self.action.tools[step.tool],
            source,
            self.settings,
            what=self.action.what,
            on_line=sink,
            cancel=self.cancel,
        )
        if assembled.wasm is None:
            message = f"{step.label} failed: {step.tool} rejected {step.source}"
            raise _rejected(self.driver, message, assembled.errors)
        return assembled.wasm

    def dependencies(self, scratch: Path) -> list[tuple[str, str]]:
        """``(path, digest)`` of the files outside the request this run read, from the
        plan's dependency files; system and toolchain files are left out."""
        plan = self.action.plan
        if not plan.depfiles:
            return []
        missing = [name for name in plan.depfiles if not (scratch / name).is_file()]
        if missing:
            raise CompileFailed(
                f"the toolchain reported success but wrote no dependency file {missing[0]}",
                hint="this is a bug in pf, please report it",
            )
        if self.settings.sandbox != "off":
            # A confined compile could read nothing outside its tools and the scratch
            # dir, and a path it names is one of its own view (its /tmp, its /proc),
            # not the host's: there is nothing outside the request to compare later.
            return []
        excluded = depfiles.SYSTEM_PREFIXES + depfiles.toolchain_prefixes(
            tool.path for tool in self.action.tools.values()
        )
        found = []
        for path in depfiles.external(scratch, plan.depfiles, excluded):
            try:
                found.append((str(path), digest_file(path)))
            except OSError:
                continue  # gone already (a generated file): nothing to compare later
        return found


def _visible(tools: Iterable[ToolInfo]) -> tuple[Path, ...]:
    """What a confined step must see besides /usr: the install prefix of each tool that
    lives in a ``bin`` directory elsewhere (a pinned /opt/x/bin/clang: /opt/x), or the
    tool itself where it has no such prefix."""
    return _visible_of(tuple(tools))


# A realpath is a stat of every directory above the tool, on every compile otherwise; a
# process meets a handful of toolchains. Keyed by the tools' digests too: a tool that
# now resolves elsewhere (an alternative switched) is another binary.
@functools.lru_cache(maxsize=64)
def _visible_of(tools: tuple[ToolInfo, ...]) -> tuple[Path, ...]:
    found: dict[Path, None] = {}
    for tool in tools:
        for path in (tool.path, os.path.realpath(tool.path)):
            prefix = depfiles.toolchain_prefixes([path])
            found.setdefault(Path(prefix[0]) if prefix else Path(path))
    return tuple(found)


def _check_scratch(scratch: Path, uid: int | None, label: str) -> None:
    unsafe = hand_over(scratch, uid)
    if unsafe:
        raise CompileFailed(
            f"{label}: the toolchain left {unsafe[0]} in the build directory as a link or "
            "special file, which pf does not follow",
            hint="tools must write regular files; the build was stopped",
        )


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


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
    request: CompileRequest, settings: Settings, plan: Plan | None = None
) -> tuple[Driver, Action]:
    driver = driver_for_request(request)
    if plan is None:
        plan = as_configured(driver.plan(request), settings)
    what = f"{request.language} -> {request.target} build"
    inputs = (*request.sources, *plan.extra_inputs)
    return driver, _action(driver, request.target, what, plan, inputs, settings)


def prepare(request: CompileRequest, settings: Settings, plan: Plan | None = None) -> Action:
    """The action of ``request``: its plan (``plan``, as configured, if the caller has
    made it already), its tools probed, and its key. Raises what compile_sources raises
    before a compiler would start (bad request, missing toolchain)."""
    return _prepare(request, settings, plan)[1]


class _Builder:
    """Runs the actions of one compile that missed the cache, and stores what they made."""

    def __init__(
        self,
        driver: Driver,
        settings: Settings,
        cache: ActionCache,
        on_line: LineSink | None,
        cancel: threading.Event | None,
    ) -> None:
        self.driver = driver
        self.settings = settings
        self.cache = cache
        self.on_line = on_line
        self.cancel = cancel
        self.timings: dict[str, float] = {}

    def _space(self, action: Action) -> contextlib.AbstractContextManager[Space | None]:
        # A plan of Assemble steps alone (each sends its source to a resident that is
        # confined on its own) needs no directory.
        if action.plan.in_memory:
            return contextlib.nullcontext()
        # Confined steps run as the sandbox's uid, which must reach the scratch dir:
        # the cache's own may sit below a directory only pf's user can enter, so it
        # serves unconfined builds only.
        readonly = _visible(action.tools.values())
        return confined(
            self.settings,
            readonly,
            scratch=self.cache.scratch,
            dispose=_sweeper.discard,
            keep=(OBJ_DIR, OUT_DIR),
        )

    def prebuilt(self, action: Action) -> Entry:
        """The cached outputs of a prebuilt input, built now if this is the first need."""
        entry = self.cache.lookup(action.key)
        if entry is not None:
            return entry
        with flight(self.cache.root / "locks", action.key), self.cache.flight(action.key):
            entry = self.cache.lookup(action.key)
            if entry is not None:
                return entry
            # Its phases are not the request's steps (progress counts those), so only
            # its output lines are passed on.
            return self.build(action, [], None)

    def build(
        self,
        action: Action,
        prebuilt: Sequence[tuple[Plan, Entry]],
        on_phase: PhaseSink | None,
    ) -> Entry:
        started = time.monotonic()
        execution = _Execution(
            self.driver,
            action,
            self.settings,
            self.on_line,
            on_phase,
            # Resolved only for a compile that runs ccache: a realpath is a dozen stats.
            lambda: self.cache.root.resolve() / "ccache",
            self.cancel,
        )
        with self._space(action) as space:
            if space is None:
                outputs = execution.execute_in_memory()
            else:
                outputs = execution.execute(space, prebuilt)
            stored = time.monotonic()
            deps = [] if space is None else execution.dependencies(space.path)
            diagnostics = self.driver.diagnostics(
                "\n".join(text for stream, text in execution.log if stream == "stderr")
            )
            entry = self.cache.store(
                action.key,
                outputs,
                execution.log,
                [d.to_dict() for d in diagnostics],
                action.plan.note,
                stored - started,
                deps,
            )
            execution.timings["store"] = time.monotonic() - stored
        for label, seconds in execution.timings.items():
            self.timings[label] = self.timings.get(label, 0.0) + seconds
        return entry


def lookup(
    request: CompileRequest,
    settings: Settings,
    *,
    cache: ActionCache | None = None,
    action: Action | None = None,
) -> BuildResult | None:
    """The cached result of ``request`` without running anything, or None on a miss.

    The build service asks this first, so a hit is answered at once instead of waiting
    for a worker behind compiles that miss. ``action``: the request's (``prepare``), if
    the caller has made it already. Raises what compile_sources raises before a compiler
    would start (bad request, missing toolchain).
    """
    started = time.monotonic()
    if action is None:
        action = prepare(request, settings)
    cache = cache or ActionCache.for_settings(settings)
    entry = cache.lookup(action.key)
    if entry is None:
        return None
    return _result(request, entry, True, action.tools, time.monotonic() - started, {})


def compile_sources(
    request: CompileRequest,
    settings: Settings,
    *,
    cache: ActionCache | None = None,
    on_line: LineSink | None = None,
    on_phase: PhaseSink | None = None,
    cancel: threading.Event | None = None,
    missed: bool = False,
    action: Action | None = None,
) -> BuildResult:
    """Compile ``request``, from the cache when an identical action has run before.

    ``missed`` says the caller has just looked the request up and missed (the build
    service's triage): the cache is then looked at once, under the single-flight lock,
    where an identical action stored meanwhile is found. ``action``: the request's, as
    that lookup made it (``prepare``): it is not planned and keyed again.

    Raises UnsupportedLanguage/UnsupportedTarget/InvalidOption for bad requests,
    ToolchainMissing when a tool is not installed, CompileFailed (with diagnostics) when
    the compiler rejects the sources, BuildTimeout when it runs too long, and
    BuildCancelled when ``cancel`` is set while it runs (its process group is killed).
    """
    started = time.monotonic()
    if action is None:
        driver, action = _prepare(request, settings)
    else:
        driver = driver_for_request(request)
    cache = cache or ActionCache.for_settings(settings)
    # Before the lock as well, unless just missed: a hit then takes no lock.
    entry = None if missed else cache.lookup(action.key)
    if entry is not None:
        return _result(request, entry, True, action.tools, time.monotonic() - started, {})
    builder = _Builder(driver, settings, cache, on_line, cancel)
    # Prebuilt inputs are fetched before this action's single-flight lock is taken:
    # theirs may be the same lock, and a holder waiting for it would wait forever.
    with contextlib.ExitStack() as pins:
        prebuilt = []
        for item in action.prebuilt:
            prebuilt_entry = builder.prebuilt(item)
            # It must stay until copied in, whatever the stores after it evict.
            pins.enter_context(cache.pin_entry(prebuilt_entry))
            prebuilt.append((item.plan, prebuilt_entry))
        # This process's lock, then every process's (shared mode): an identical action
        # that another one runs meanwhile is found in the cache after it.
        with flight(cache.root / "locks", action.key), cache.flight(action.key):
            entry = cache.lookup(action.key)
            if entry is not None:
                return _result(request, entry, True, action.tools, time.monotonic() - started, {})
            entry = builder.build(action, prebuilt, on_phase)
    return _result(request, entry, False, action.tools, time.monotonic() - started, builder.timings)
