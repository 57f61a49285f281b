"""Task-runner benchmark: pf's start-up paths against a bare interpreter, side by side.

Prints the median of several runs of each, with its target:
  floor        ``.venv/bin/python -c pass``: the interpreter pf runs on (the yardstick);
               also the ``python3`` found on PATH, for reference only (here a pyenv
               shim that execs through a shell script, several times slower)
  list 500     ``pf list`` as a whole process on a generated Pfyfile of 500 tasks spread
               over 10 included files            target <= 60 ms and <= 2.5x the floor,
               both with its listing cache and cold (cache dropped before each run, as
               after the Pfyfile changed: the whole parse is paid)
  list repo    ``pf list`` on the repository's own Pfyfile.pf (+ Pfyfile.web.pf), same targets
  list folder  ``pf list`` on a folder of 60 Pfyfiles (the main one and 59 group files
               beside it, each loaded on its own), same targets
  parse 500    parsing those 500 tasks in-process (pf.dsl.parse_file)      target <= 10 ms
  no-op run    ``pf TASK`` on a task with ``sources``/``generates`` that is up to date,
               whole process                                                target <= 80 ms
Generated files live in a temporary directory. Bytecode is compiled first: this
machine sets PYTHONDONTWRITEBYTECODE, and without .pyc files every start would
recompile pf's modules. PF_BENCH_RUNS sets the number of runs (default 21).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(os.environ.get("PF_BENCH_RUNS", "21"))
PYTHON = sys.executable
PF = str(Path(sys.executable).with_name("pf"))
FILES = 10
TASKS_PER_FILE = 50


def _typical(n: int) -> str:
    """A task in the shapes real Pfyfiles mostly use: 3 to 8 lines, a few blocks."""
    name = f"part-{n:03d}"
    kind = n % 20
    head = f"task {name}"
    if kind % 2 == 0:
        head += ' opt_level="2" target="wasm"'
    if kind % 5 == 0:
        head += f" [alias p{n}]"
    lines = [head, f"  describe Build part {n} of the demo"]
    if kind < 8:
        lines += ['  shell echo "building ' + name + ' for $target" && make -C src part' + str(n)]
    elif kind < 12:
        lines += [
            f'  env CFLAGS="-O${{opt_level}}" OUT=out/{n}',
            '  shell mkdir -p "$OUT" && cc $CFLAGS -c src/part.c -o "$OUT/part.o"',
        ]
    elif kind < 15:
        lines += [
            '  if $target == "wasm"',
            "    compile src/part.c target=$target out=web/$target",
            "  else",
            "    make all jobs=4",
            "  end",
        ]
    elif kind < 17:
        lines += [
            '  for lang in ["c", "rust"]',
            '    shell echo "$lang"',
            "  end",
        ]
    elif kind < 19:
        lines += [f"  needs part-{n - 1:03d}", "  sources src/*.c", "  shell ./build.sh"]
    else:
        lines += ["  shell [lang:python] << EOF", "    print('part')", "  EOF"]
    return "\n".join([*lines, "end", ""])


def _dense(n: int) -> str:
    """A task using most of the language at once (headers, env, blocks, heredocs, needs)."""
    name = f"build-part-{n:03d}"
    lines = [
        f'task {name} opt_level="2" target="wasm" jobs="4" [alias bp{n}|alias=part{n}]',
        f"  describe Build part {n} of the demo for the chosen target",
        f'  env CFLAGS="-O${{opt_level}}" OUT="out/$target/{n}"',
        '  shell mkdir -p "$OUT" && echo "building ' + name + '" | tee "$OUT/log.txt"',
    ]
    kind = n % 4
    if kind == 0:
        lines += [
            '  if $target == "wasm"',
            "    compile src/part.c target=$target out=$OUT opt_level=$opt_level",
            "  else",
            "    make all jobs=$jobs",
            "  end",
        ]
    elif kind == 1:
        lines += [
            '  for lang in ["c", "rust", "fortran"]',
            '    shell echo "$lang for $target" >> "$OUT/langs.txt"',
            "  end",
        ]
    elif kind == 2:
        lines += [
            "  shell [lang:python] << EOF",
            "    import os",
            '    print("part", os.environ["OUT"])',
            "  EOF",
        ]
    else:
        lines += [
            f"  needs build-part-{n - 1:03d}",
            "  sources src/*.c \\",
            "      include/*.h",
            "  generates out/$target/*.wasm",
            "  cmake . build_dir=build build_type=Release jobs=$jobs",
        ]
    return "\n".join([*lines, "end", ""])


def generate(directory: Path, task: Callable[[int], str] = _typical) -> Path:
    """A main Pfyfile including 10 files of 50 tasks each; returns the main file."""
    directory.mkdir(parents=True, exist_ok=True)
    includes = []
    for f in range(FILES):
        name = f"tasks-{f:02d}.pf"
        body = [f"# part file {f}", f'env PART_{f}="{f}"', ""]
        body += [task(f * TASKS_PER_FILE + i) for i in range(TASKS_PER_FILE)]
        (directory / name).write_text("\n".join(body))
        includes.append(f"include {name}")
    main = directory / "Pfyfile.pf"
    text = "# generated: 500 tasks over 10 files\nenv ROOT=.\n" + "\n".join(includes) + "\n"
    main.write_text(text)
    return main


def generate_folder(directory: Path, files: int = 60, tasks: int = 8) -> Path:
    """A main Pfyfile and ``files - 1`` sibling group files, ``tasks`` tasks each."""
    directory.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        name = "Pfyfile.pf" if f == 0 else f"Pfyfile.g{f:02d}.pf"
        body = [f"# file {f}", f'env PART="{f}"', ""]
        body += [_typical(f * tasks + i) for i in range(tasks)]
        (directory / name).write_text("\n".join(body))
    return directory / "Pfyfile.pf"


NOOP = """\
task assets out="dist"
  describe Copy the sources into dist (skipped while nothing changed)
  sources src/*.txt
  generates $out/*.txt
  shell mkdir -p $out && cp src/*.txt $out/
end
"""


Command = tuple[list[str], Path, Callable[[], None] | None]


def _medians(commands: dict[str, Command], env: dict[str, str]) -> dict[str, float]:
    """Median wall time of each command, in ms; the commands take turns, run after run.

    Interleaving keeps the comparison fair on a busy machine: a burst of load slows
    the floor and pf alike instead of whichever happened to be measured then. A
    command's third item, if any, runs (untimed) before each of its runs.
    """
    samples: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(RUNS):
        for label, (argv, cwd, before) in commands.items():
            if before is not None:
                before()
            started = time.perf_counter()
            subprocess.run(
                argv,
                cwd=cwd,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            samples[label].append(time.perf_counter() - started)
    return {label: statistics.median(times) * 1000 for label, times in samples.items()}


def _age(directory: Path) -> None:
    # Freshly written files are never cached (they might change under the parse):
    # date the generated ones back, as files are whose tasks anybody lists.
    past = time.time() - 3600
    for path in directory.glob("*.pf"):
        os.utime(path, (past, past))


def _uncached(directory: Path) -> Callable[[], None]:
    def drop() -> None:
        for cache in directory.glob(".pf/list-*.cache"):
            cache.unlink()

    return drop


def _parse_ms(main: Path) -> tuple[float, int]:
    # In a fresh interpreter, so this process's own imports and garbage do not count;
    # each model is freed after its clock stops (freeing the last one is not parsing).
    code = (
        "import time, statistics, pf.dsl as d\n"
        f"p = {str(main)!r}\n"
        "d.parse_file(p)\n"
        "s = []\n"
        f"for _ in range({RUNS}):\n"
        "    t = time.perf_counter(); m = d.parse_file(p); s.append(time.perf_counter() - t)\n"
        "    n = len(m.tasks)\n"
        "    del m\n"
        "print(statistics.median(s) * 1000, n)\n"
    )
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    ms, count = out.stdout.split()
    return float(ms), int(count)


LIST = "pf list target"  # a row judged against min(60 ms, 2.5x the floor)


def main() -> None:
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PF")}
    env["NO_COLOR"] = "1"
    scratch = Path(tempfile.mkdtemp(prefix="pf-tasks-bench-"))
    try:
        big = generate(scratch / "typical")
        dense = generate(scratch / "dense", _dense)
        folder = generate_folder(scratch / "folder")
        noop = scratch / "noop"
        (noop / "src").mkdir(parents=True)
        for i in range(20):
            (noop / "src" / f"f{i}.txt").write_text(f"file {i}\n" * 100)
        (noop / "Pfyfile.pf").write_text(NOOP)
        subprocess.run([PF, "assets"], cwd=noop, env=env, capture_output=True, check=True)

        _age(big.parent)
        _age(dense.parent)
        _age(folder.parent)
        shim = shutil.which("python3", path=env.get("PATH"))
        timed = _medians(
            {
                "floor": ([PYTHON, "-c", "pass"], scratch, None),
                "list_big": ([PF, "list"], big.parent, None),
                "list_big_cold": ([PF, "list"], big.parent, _uncached(big.parent)),
                "list_repo": ([PF, "list"], ROOT, None),
                "list_repo_cold": ([PF, "list"], ROOT, _uncached(ROOT)),
                "list_dense_cold": ([PF, "list"], dense.parent, _uncached(dense.parent)),
                "list_folder": ([PF, "list"], folder.parent, None),
                "list_folder_cold": ([PF, "list"], folder.parent, _uncached(folder.parent)),
                "noop": ([PF, "assets"], noop, None),
            },
            env,
        )
        floor = timed["floor"]
        shim_ms = (
            _medians({"shim": ([shim, "-c", "pass"], scratch, None)}, env)["shim"] if shim else 0.0
        )
        parse, count = _parse_ms(big)
        parse_dense, _ = _parse_ms(dense)
        lines_typical = sum(
            len(f.read_text().splitlines()) for f in big.parent.glob("*.pf") if f.is_file()
        )
        lines_dense = sum(
            len(f.read_text().splitlines()) for f in dense.parent.glob("*.pf") if f.is_file()
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    big_label = f"500 tasks in 10 files ({lines_typical} lines)"
    rows = [
        ("floor: .venv/bin/python -c pass", floor, "the yardstick", None, True),
        (f"python3 on PATH: {shim}", shim_ms, "reference only", None, True),
        (f"pf list, {big_label}", timed["list_big"], "<= 60 ms, <= 2.5x", LIST, True),
        ("  same, cold: listing cache dropped first", timed["list_big_cold"], "same", LIST, True),
        (
            "pf list, the repo's Pfyfile.pf + .web.pf",
            timed["list_repo"],
            "<= 60 ms, <= 2.5x",
            LIST,
            True,
        ),
        (
            "  same, cold: listing cache dropped first",
            timed["list_repo_cold"],
            "same",
            LIST,
            True,
        ),
        (
            "pf list, a folder of 60 Pfyfiles (480 tasks)",
            timed["list_folder"],
            "<= 60 ms, <= 2.5x",
            LIST,
            True,
        ),
        (
            "  same, cold: listing cache dropped first",
            timed["list_folder_cold"],
            "same",
            LIST,
            True,
        ),
        (
            f"pf list, 500 dense tasks ({lines_dense} lines), cold",
            timed["list_dense_cold"],
            "(information)",
            None,
            True,
        ),
        (f"parse {count} tasks in-process", parse, "<= 10 ms", parse <= 10.0, False),
        ("parse 500 dense tasks in-process", parse_dense, "(information)", None, False),
        (
            "pf TASK up to date (no-op), whole process",
            timed["noop"],
            "<= 80 ms",
            timed["noop"] <= 80.0,
            True,
        ),
    ]
    limit = min(60.0, 2.5 * floor)
    print(f"pf task runner: medians of {RUNS} interleaved runs, {os.cpu_count()} CPUs")
    print(
        f"floor {floor:.1f} ms, 2.5x is {2.5 * floor:.1f} ms: `pf list` must take <= {limit:.1f} ms"
    )
    for label, ms, target, check, ratio in rows:
        if check is LIST:
            check = ms <= limit
        verdict = "" if check is None else ("ok" if check else "MISSED")
        times = f"{ms / floor:4.1f}x" if ratio else ""
        print(f"  {label:<50} {ms:7.1f} ms {times:>6}   {target:<20} {verdict}".rstrip())


if __name__ == "__main__":
    main()
