"""Compile benchmark: each demo (language, target) pair, direct toolchain vs pf cold vs pf warm.

For every pair the same steps run three ways, median of several runs each:
  direct  the driver's own argv run straight with subprocess in a temp dir (the baseline)
  cold    pf's engine on a miss (empty action cache and ccache; tool probes kept, as on any
          machine that has compiled before)
  warm    pf's engine on a hit, in-process
and, once per pair, ``pf compile`` as a whole process on a hit. Prints one table.
Issue targets: miss overhead <= 10 ms over direct; hit <= 5 ms in-process; whole-process
hit <= 150 ms; hit >= 20x faster than cold.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pf.config import load_settings
from pf.engine import ActionCache, compile_sources
from pf.engine.projects import discover, request_for
from pf.toolchains import TARGETS, CompileRequest, Options, Run, driver_for
from pf.toolchains.probe import detect

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demos" / "polyglot"
RUNS = int(os.environ.get("PF_BENCH_RUNS", "5"))
# The console script users run, beside the interpreter running this benchmark.
PF = str(Path(sys.executable).with_name("pf"))


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def direct(request: CompileRequest) -> float:
    """Run the plan's steps straight, no pf: the toolchain invoked directly."""
    settings = load_settings()
    driver = driver_for(request.language, request.target)
    plan = driver.plan(request)
    paths = {spec.name: detect(spec, settings).path for spec in plan.tools}
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        for source in (*request.sources, *plan.extra_inputs):
            (root / source.name).parent.mkdir(parents=True, exist_ok=True)
            (root / source.name).write_bytes(source.content)
        (root / "obj").mkdir()
        (root / "out").mkdir()
        env = {**settings.base_env, **plan.env}
        started = time.perf_counter()
        for step in plan.steps:
            if isinstance(step, Run):
                subprocess.run(
                    [paths[step.argv[0]], *step.argv[1:]],
                    cwd=root,
                    env=env,
                    check=True,
                    capture_output=True,
                )
            else:
                step.func(root)
        return time.perf_counter() - started


def main() -> None:
    settings = load_settings()
    project = discover(DEMO)
    base = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    header = (
        f"{'pair':<16}{'direct ms':>10}{'cold ms':>10}{'overhead':>10}"
        f"{'warm ms':>10}{'cold/warm':>11}{'pf hit ms':>11}"
    )
    print(f"pf compile benchmark - {os.cpu_count()} cores, median of {RUNS} runs")
    print(header)
    print("-" * len(header))
    worst = {"overhead": 0.0, "warm": 0.0, "process": 0.0, "ratio": float("inf")}
    try:
        for language in project.languages:
            for target in TARGETS:
                request = request_for(project, language, target, Options())
                compile_sources(request, settings)  # probes tools, warms the OS file cache
                direct_s = [direct(request) for _ in range(RUNS)]
                cold_s = []
                for run in range(RUNS):
                    cache = ActionCache(
                        base / f"{language}-{target}-{run}", settings.cache_max_bytes
                    )
                    started = time.perf_counter()
                    compile_sources(request, settings, cache=cache)
                    cold_s.append(time.perf_counter() - started)
                warm_cache = ActionCache(settings.cache_dir, settings.cache_max_bytes)
                warm_s = []
                for _ in range(RUNS * 4):
                    started = time.perf_counter()
                    result = compile_sources(request, settings, cache=warm_cache)
                    warm_s.append(time.perf_counter() - started)
                    assert result.cached
                process_s = []
                out = base / "out"
                files = [str(DEMO / name) for name in project.sources[language]]
                for _ in range(RUNS):
                    started = time.perf_counter()
                    subprocess.run(
                        [
                            PF,
                            "compile",
                            *files,
                            "-t",
                            target,
                            "-o",
                            str(out),
                        ],
                        check=True,
                        capture_output=True,
                    )
                    process_s.append(time.perf_counter() - started)
                d, c, w, p = (_median_ms(x) for x in (direct_s, cold_s, warm_s, process_s))
                worst["overhead"] = max(worst["overhead"], c - d)
                worst["warm"] = max(worst["warm"], w)
                worst["process"] = max(worst["process"], p)
                worst["ratio"] = min(worst["ratio"], c / w)
                print(
                    f"{language + ' ' + target:<16}{d:>10.1f}{c:>10.1f}{c - d:>+10.1f}"
                    f"{w:>10.2f}{c / w:>10.0f}x{p:>11.1f}"
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print("-" * len(header))
    print(
        f"worst: miss overhead {worst['overhead']:+.1f} ms (target <= 10), "
        f"hit {worst['warm']:.2f} ms (target <= 5), "
        f"pf compile hit {worst['process']:.0f} ms (target <= 150), "
        f"cold/warm {worst['ratio']:.0f}x (target >= 20)"
    )


if __name__ == "__main__":
    main()
