"""Per-compile overhead of the engine against the bare tool: compiles/s of distinct modules.

For each language (WAT, the cheapest compile, where overhead shows most; C and Rust,
fewer modules) N distinct small modules, each a miss for every cache, are compiled
these ways, median of PF_BENCH_RUNS rounds (5), each round fresh modules; bare, engine
and serve alternate, and the rows that start a process per module in a sandbox
workspace (wat2wasm, 1-shot) run after all of theirs, since the files they delete make
every file created after them dearer on this disk (see the end of this docstring):

  bare    the tool itself in an ``xargs -P <PF_JOBS>`` loop, with the argv pf's driver
          plans (read from the driver, so the flags are the same): ``xargs -I{}
          wat2wasm ...`` for WAT; for C and Rust, whose plans have several steps, one
          ``sh -ec`` per module running them in order (the shell's start is under 1% of
          such a compile). pf's in-process checks (Rust's export check) are not run:
          they are pf's work.
  engine  pf's engine in-process: compile_sources from PF_JOBS threads, sandbox on, in
          sandbox cells (PF_SANDBOX_CELL_JOBS, default), to its own action cache; no server
  wat2wasm  (WAT only) the same with PF_WAT_ASSEMBLER=wat2wasm: the system's wat2wasm
          started in a cell for every module, instead of the resident assembler (wabt
          built to wasm, one fresh wasm instance per module)
  1-shot  the same with PF_SANDBOX_CELL_JOBS=0 (and, for WAT, wat2wasm): one bubblewrap
          started for every step
  serve   ``pf serve`` (sandbox on, a token required: every request carries one, PF_JOBS
          workers): all N modules POSTed to /api/compile by 16 keep-alive connections,
          timed from the first request until a WebSocket client (one per-event client on
          /ws, connected before it) receives the end of the last build; each must be
          build_completed

Each row prints compiles/s (the median round's), the wall time per compile at that rate
(ms/compile = 1000 / rate, so PF_JOBS compiles overlap in it), and the ratio of pf's time
to the bare loop's beside the goal: <= 1.3x for WAT, <= 1.1x for C and Rust. A missed
goal is printed as MISSED. The ratio is the median of each round's own: a round's time
through pf over the time of the bare round just before it (for the rows run after all of
those, the bare round of the same number). This machine's speed drifts by 10-20% over
minutes, and two medians taken apart can come from different minutes, where a round and
the bare round before it share theirs. PF_BENCH_RUNS sets the rounds (5), and
PF_BENCH_OVERHEAD_N the WAT module count (400; C and Rust each use a fifth of it: a
round of 40 lasted 1.5 s, and its ratio moved by 10% between runs). The whole run takes
about two and a half minutes on 2 cores.

Last, the cost of one confined step of /usr/bin/true, one at a time: in a cell, with a
bubblewrap of its own, and a bare fork and exec; and what a new file and a new directory
cost where the rounds ran (TMPDIR) and on /dev/shm, before and after the rounds. Every
compile, bare or through pf, makes a few: on a disk where they are slow (an ext4
without a journal steps over every inode deleted in the last one to six minutes, in
the kernel's ``recently_deleted``), they move every row between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pf.config import Settings, load_settings
from pf.engine import ActionCache, compile_sources
from pf.sandbox import Limits, confined
from pf.toolchains import CompileRequest, Options, Plan, Run, SourceFile, Transform, driver_for
from pf.toolchains.probe import detect
from pf.toolchains.tools import WAT2WASM
from serverkit import PfServer, closed_loop, request_bytes, wat_source

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

RUNS = int(os.environ.get("PF_BENCH_RUNS", "5"))
STEPS = 300
N_WAT = int(os.environ.get("PF_BENCH_OVERHEAD_N", "400"))
CONNECTIONS = 16
DRAIN_TIMEOUT = 300.0
ENDS = ("build_completed", "build_failed", "build_cancelled")


def c_source(n: int) -> str:
    return f"int value(void) {{ return {n}; }}\nint add(int a, int b) {{ return a + b; }}\n"


def rust_source(n: int) -> str:
    return (
        f'#[no_mangle]\npub extern "C" fn value() -> i32 {{\n    {n}\n}}\n'
        '#[no_mangle]\npub extern "C" fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n'
    )


@dataclass(frozen=True)
class Language:
    name: str
    file: str
    source: Callable[[int], str]
    count: int
    goal: float

    def request(self, n: int) -> CompileRequest:
        source = SourceFile(self.file, self.source(n).encode())
        return CompileRequest(self.name, "wasm", (source,), Options())

    def body(self, n: int) -> bytes:
        files = {self.file: self.source(n)}
        body = {"language": self.name, "target": "wasm", "files": files}
        return json.dumps(body, separators=(",", ":")).encode()


LANGUAGES = (
    Language("wat", "bench.wat", wat_source, N_WAT, 1.3),
    Language("c", "bench.c", c_source, max(4, N_WAT // 5), 1.1),
    Language("rust", "bench.rs", rust_source, max(4, N_WAT // 5), 1.1),
)


# The bare tool -----------------------------------------------------------------------


def _plan(request: CompileRequest) -> Plan:
    """The driver's plan as commands: WAT's assembly as the system's wat2wasm runs it."""
    return driver_for(request.language, request.target).plan(request).assembled_by(WAT2WASM)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _written_by_pf(language: Language, settings: Settings, base: Path) -> dict[str, bytes]:
    """What pf's in-process steps write between the tools (C's export list for the link),
    from one module run step by step: a user typing the commands writes it once by hand,
    and every benchmark module exports the same names."""
    request = language.request(0)
    plan = _plan(request)
    root = Path(tempfile.mkdtemp(dir=base))
    _lay_out(root, request, settings)
    paths = {spec.name: detect(spec, settings).path for spec in plan.tools}
    env = {**settings.base_env, **plan.env}
    written: dict[str, bytes] = {}
    for step in plan.steps:
        before = _files(root)
        if isinstance(step, Run):
            argv = [paths[step.argv[0]], *step.argv[1:]]
            subprocess.run(argv, cwd=root, env=env, check=True, capture_output=True)
        else:
            assert isinstance(step, Transform)  # assembled_by turned Assemble into Run
            step.func(root)
            written |= {k: v for k, v in _files(root).items() if before.get(k) != v}
    shutil.rmtree(root)
    return written


def _lay_out(
    root: Path, request: CompileRequest, settings: Settings, extra: dict[str, bytes] | None = None
) -> list[str]:
    """Write the module's inputs under ``root``; returns its tool steps as shell commands."""
    plan = _plan(request)
    if plan.prebuilt:
        raise RuntimeError(f"{request.language}: prebuilt inputs are not benchmarked here")
    for source in (*request.sources, *plan.extra_inputs):
        (root / source.name).parent.mkdir(parents=True, exist_ok=True)
        (root / source.name).write_bytes(source.content)
    (root / "obj").mkdir()
    (root / "out").mkdir()
    for name, content in (extra or {}).items():
        (root / name).write_bytes(content)
    paths = {spec.name: detect(spec, settings).path for spec in plan.tools}
    assigns = [f"{k}={shlex.quote(v)}" for k, v in plan.env.items()]
    return [
        shlex.join([*(["env", *assigns] if assigns else []), paths[s.argv[0]], *s.argv[1:]])
        for s in plan.steps
        if isinstance(s, Run)
    ]


def bare(language: Language, first: int, settings: Settings, base: Path) -> float:
    """Seconds for ``xargs -P jobs`` to compile the round's modules with the bare tool."""
    round_dir = Path(tempfile.mkdtemp(dir=base))
    extra = _written_by_pf(language, settings, base)
    names = []
    scripts = []
    for n in range(first, first + language.count):
        root = round_dir / f"m{n}"
        root.mkdir()
        steps = _lay_out(root, language.request(n), settings, extra)
        names.append(root.name)
        scripts.append(f"cd {shlex.quote(str(root))} && " + " && ".join(steps))
    jobs = str(settings.jobs)
    if language.name == "wat":
        # One step: the tool straight from xargs, no shell, as a user would run it by hand.
        plan = _plan(language.request(first))
        (step,) = (s for s in plan.steps if isinstance(s, Run))
        tool = detect(plan.tools[0], settings).path
        argv = [tool, *(a if a in ("-o", "--") else "{}/" + a for a in step.argv[1:])]
        command = ["xargs", "-P", jobs, "-I{}", *argv]
        stdin = "\n".join(names) + "\n"
    else:
        command = ["xargs", "-0", "-P", jobs, "-n1", "sh", "-ec"]
        stdin = "\0".join(scripts) + "\0"
    started = time.perf_counter()
    subprocess.run(command, input=stdin.encode(), cwd=round_dir, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    missing = [name for name in names if not any((round_dir / name / "out").iterdir())]
    if missing:
        raise RuntimeError(f"bare {language.name}: no output in {missing[:3]}")
    if language.name == "wat":
        # Kept until the end: on ext4 without a journal, creating a file costs more near
        # inodes deleted in the last half minute, and the next rows would pay for these.
        return seconds
    # Removed now, after the timing, as pf's rows remove their workspaces: a Rust round
    # leaves a 26 MB staticlib a module (2 GB a round of 80), and kept to the end these
    # were dirty pages whose writeback throttled the next rounds, the bare loop's first
    # (pf's in-process rows ran faster than the bare tool).
    shutil.rmtree(round_dir)
    return seconds


# pf's engine, in-process ---------------------------------------------------------------


def engine(language: Language, first: int, settings: Settings, cache: ActionCache) -> float:
    def one(n: int) -> None:
        result = compile_sources(language.request(n), settings, cache=cache)
        assert not result.cached

    started = time.perf_counter()
    with ThreadPoolExecutor(settings.jobs) as pool:
        list(pool.map(one, range(first, first + language.count)))
    return time.perf_counter() - started


def step_costs(settings: Settings) -> dict[str, float]:
    """Milliseconds per /usr/bin/true: in a cell, with a bubblewrap of its own, bare."""
    limits = Limits(timeout=10.0)
    env = {"PATH": "/usr/bin:/bin"}
    costs = {}
    for way, cell_jobs in (("cell", STEPS + 1), ("1-shot", 0)):
        ways = replace(settings, sandbox_cell_jobs=cell_jobs)
        with confined(ways, (), scratch=_no_scratch, dispose=shutil.rmtree) as space:
            space.run(["/usr/bin/true"], env=env, limits=limits)
            started = time.perf_counter()
            for _ in range(STEPS):
                assert space.run(["/usr/bin/true"], env=env, limits=limits).ok
            costs[way] = (time.perf_counter() - started) * 1000 / STEPS
    started = time.perf_counter()
    for _ in range(STEPS):
        subprocess.run(["/usr/bin/true"], check=True)
    costs["bare"] = (time.perf_counter() - started) * 1000 / STEPS
    return costs


def create_costs(directory: Path) -> tuple[float, float]:
    """Microseconds to create a small file, and a directory, in a new folder there."""
    folder = Path(tempfile.mkdtemp(dir=directory))
    try:
        started = time.perf_counter()
        for n in range(STEPS):
            (folder / f"f{n}").write_bytes(b"\0asm\1\0\0\0")
        files = (time.perf_counter() - started) * 1e6 / STEPS
        started = time.perf_counter()
        for n in range(STEPS):
            (folder / f"d{n}").mkdir()
        folders = (time.perf_counter() - started) * 1e6 / STEPS
    finally:
        shutil.rmtree(folder)
    return files, folders


def _no_scratch() -> contextlib.AbstractContextManager[Path]:
    raise SystemExit("PF_SANDBOX=off: this benchmark measures pf with the sandbox on")


# pf serve --------------------------------------------------------------------------------


async def _serve_round(server: PfServer, language: Language, first: int, token: str) -> float:
    """Seconds from the first submission until the WebSocket announced the end of the last
    build, as a user watching the builds sees it."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    headers = {"Authorization": f"Bearer {token}"}
    host, port = "127.0.0.1", server.port
    loop = asyncio.get_running_loop()
    ended: dict[str, tuple[dict[str, object], float]] = {}
    arrived = asyncio.Event()

    async def watch(ws: ClientConnection) -> None:
        async for message in ws:
            event = json.loads(message)
            if event["type"] in ENDS:
                ended[event["buildId"]] = (event, loop.time())
                arrived.set()

    # One per-event client, opened (and given its initial status) before the first
    # submission, so no build can end unseen.
    async with connect(f"ws://{host}:{port}/ws", additional_headers=headers) as ws:
        initial = json.loads(await ws.recv())
        if initial["type"] != "initial_status":
            raise RuntimeError(f"serve {language.name}: the WebSocket began with {initial}")
        watcher = asyncio.ensure_future(watch(ws))
        started = loop.time()
        outcome = await closed_loop(
            host,
            port,
            lambda i: request_bytes("POST", "/api/compile", language.body(first + i), headers),
            total=language.count,
            connections=CONNECTIONS,
            keep=True,
        )
        if outcome.ok != language.count or outcome.errors:
            raise RuntimeError(f"serve {language.name}: {outcome.statuses} {outcome.errors}")
        ids = {json.loads(answer.body)["buildId"] for answer in outcome.answers}
        while not ids <= ended.keys():
            arrived.clear()
            remaining = started + DRAIN_TIMEOUT - loop.time()
            left = len(ids - ended.keys())
            if watcher.done():
                raise RuntimeError(
                    f"serve {language.name}: the WebSocket closed, {left} left"
                ) from watcher.exception()
            if remaining <= 0:
                raise TimeoutError(f"serve {language.name}: {left} builds did not end")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), remaining)
        seconds = max(ended[build_id][1] for build_id in ids) - started
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await watcher
    # A compile that failed would be cheap: every build of the round must have succeeded.
    for build_id in ids:
        event, _ = ended[build_id]
        if event["type"] != "build_completed":
            raise RuntimeError(f"serve {language.name}: build {build_id} ended: {event}")
    return seconds


# Report ----------------------------------------------------------------------------------


def main() -> None:
    settings = load_settings()
    if settings.sandbox == "off":
        raise SystemExit("PF_SANDBOX=off: this benchmark measures pf with the sandbox on")
    base = Path(tempfile.mkdtemp(prefix="pf-overhead-"))
    # As pf makes it: its scratch folders on a tmpfs where there is one.
    cache = ActionCache.for_settings(replace(settings, cache_dir=base / "cache"))
    env = {"PF_JOBS": str(settings.jobs), "PF_MAX_QUEUE": "100000", "PF_SHUTDOWN_GRACE": "2"}
    server = PfServer(env, name="overhead")
    figures: dict[tuple[str, str], list[float]] = {}
    native = replace(settings, wat_assembler="wat2wasm")
    one_shot = replace(native, sandbox_cell_jobs=0)
    places = [Path(tempfile.gettempdir())] + [p for p in (Path("/dev/shm"),) if p.is_dir()]
    creates = {"before": [create_costs(place) for place in places]}
    try:
        token = server.pf("token", "create", "bench", "--scope", "build")
        server.start()
        for language in LANGUAGES:
            # Probes the tools, warms the OS file cache and the server's first compile.
            compile_sources(language.request(0), settings, cache=cache)
            asyncio.run(_serve_round(server, language, 1, token))
            # The rows compared with the bare loop first, alternating, then those that
            # start a process per module in a sandbox workspace: those delete thousands
            # of files, and on this disk a file created for minutes after that costs
            # up to 40 times as much (see the module docstring). A WAT build through
            # the engine or pf serve deletes nothing.
            for run in range(RUNS):
                first = (run + 1) * 1_000_000
                rounds = figures.setdefault((language.name, "bare"), [])
                rounds.append(bare(language, first, settings, base))
                rounds = figures.setdefault((language.name, "engine"), [])
                rounds.append(engine(language, first + 100_000, settings, cache))
                rounds = figures.setdefault((language.name, "serve"), [])
                rounds.append(asyncio.run(_serve_round(server, language, first + 200_000, token)))
            for run in range(RUNS):
                first = (run + 1) * 1_000_000
                if language.name == "wat":
                    rounds = figures.setdefault((language.name, "wat2wasm"), [])
                    rounds.append(engine(language, first + 400_000, native, cache))
                rounds = figures.setdefault((language.name, "1-shot"), [])
                rounds.append(engine(language, first + 300_000, one_shot, cache))
        creates["after"] = [create_costs(place) for place in places]
    finally:
        server.__exit__()
        shutil.rmtree(base, ignore_errors=True)
    cores = os.cpu_count()
    print(
        f"pf per-compile overhead - {cores} cores, PF_JOBS={settings.jobs}, sandbox "
        f"{settings.sandbox}, median of {RUNS} rounds; ratio: the median of each round's "
        "time over its bare round's (the rounds' lowest-highest)"
    )
    header = (
        f"{'compile (n)':<18}{'way':<9}{'compiles/s':>11}{'ms/compile':>11}{'ratio':>8}"
        f"{'rounds':>13}  goal"
    )
    print(header)
    print("-" * (len(header) + 16))
    for language in LANGUAGES:
        bare_rounds = figures[(language.name, "bare")]
        for way in ("bare", "engine", "wat2wasm", "1-shot", "serve"):
            if (language.name, way) not in figures:
                continue
            rounds = figures[(language.name, way)]
            rate = language.count / statistics.median(rounds)
            label = f"{language.name} wasm ({language.count})" if way == "bare" else ""
            if way == "bare":
                tail = f"{'':>21}  (baseline: xargs -P {settings.jobs})"
            else:
                ratios = [t / b for t, b in zip(rounds, bare_rounds, strict=True)]
                ratio = statistics.median(ratios)
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
                verdict = "ok" if ratio <= language.goal else "MISSED"
                tail = f"{ratio:>7.2f}x{spread:>13}  <= {language.goal}x {verdict}"
            print(f"{label:<18}{way:<9}{rate:>11.1f}{1000 / rate:>11.2f}{tail}")
    costs = step_costs(settings)
    print()
    print(f"one confined step of /usr/bin/true, {STEPS} in a row (ms/step)")
    for way, label in (("cell", "in a cell"), ("1-shot", "own bubblewrap"), ("bare", "bare")):
        print(f"  {label:<16}{costs[way]:>8.2f}")
    print()
    print(f"a new file and a new directory, {STEPS} of each in a new folder (us each)")
    for when, measured in creates.items():
        for place, (files, folders) in zip(places, measured, strict=True):
            label = f"{place} {when} the rounds"
            print(f"  {label:<30}{files:>8.0f} file {folders:>8.0f} directory")


if __name__ == "__main__":
    main()
