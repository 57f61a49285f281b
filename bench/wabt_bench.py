"""Per-compile cost of assembling WAT: wat2wasm processes against wabt as WebAssembly.

The same N (400) distinct small modules (serverkit.wat_source), one at a time, three ways:

  wat2wasm   Debian's /usr/bin/wat2wasm 1.0.32, one process per module (what pf runs now)
  assembler  pf.toolchains.wabt.Assembler.assemble in this process: a fresh wasmtime
             Store and Instance of wabt 1.0.39 per module
  served     ``python -I -B -m pf.toolchains.wabt`` over its pipes, one client sending a
             request and reading its reply, module after module

Each row prints microseconds per compile (median of PF_BENCH_RUNS rounds, 3) and its ratio
to wat2wasm. PF_BENCH_WABT_N sets the module count. Takes a few seconds on 2 cores.
"""

from __future__ import annotations

import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pf.toolchains.assembly import decode_reply, encode_request, frame
from pf.toolchains.wabt import SHARE_DIR, Assembler
from serverkit import wat_source

N = int(os.environ.get("PF_BENCH_WABT_N", "400"))
RUNS = int(os.environ.get("PF_BENCH_RUNS", "3"))
LIMIT = 256 * 1024 * 1024


def bare(sources: list[bytes], work: Path) -> None:
    for i, source in enumerate(sources):
        path = work / f"m{i}.wat"
        path.write_bytes(source)
        subprocess.run(
            ["/usr/bin/wat2wasm", "-o", str(work / f"m{i}.wasm"), "--", str(path)], check=True
        )


def in_process(assembler: Assembler) -> Callable[[list[bytes], Path], None]:
    def run(sources: list[bytes], work: Path) -> None:
        for source in sources:
            done = assembler.assemble(source, "bench.wat", debug_names=False, memory_limit=LIMIT)
            assert done.wasm is not None, done

    return run


def served(process: subprocess.Popen[bytes]) -> Callable[[list[bytes], Path], None]:
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    def run(sources: list[bytes], work: Path) -> None:
        for source in sources:
            stdin.write(frame(encode_request(source, "bench.wat", False, LIMIT)))
            stdin.flush()
            prefix = stdout.read(4)
            reply = decode_reply(stdout.read(struct.unpack(">I", prefix)[0]))
            assert reply.wasm is not None, reply

    return run


def measure(run: Callable[[list[bytes], Path], None], round_no: int, work: Path) -> float:
    sources = [wat_source(round_no * N + i).encode() for i in range(N)]
    start = time.perf_counter()
    run(sources, work)
    return (time.perf_counter() - start) / N * 1e6


def main() -> None:
    assembler = Assembler(SHARE_DIR / "wabt.wasm", SHARE_DIR / "exports.json")
    command = [sys.executable, "-I", "-B", "-m", "pf.toolchains.wabt"]
    with (
        tempfile.TemporaryDirectory() as tmp,
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as process,
    ):
        ways = {"wat2wasm": bare, "assembler": in_process(assembler), "served": served(process)}
        # A warm-up round for each, then RUNS measured rounds, alternating.
        times: dict[str, list[float]] = {name: [] for name in ways}
        for round_no in range(RUNS + 1):
            for name, run in ways.items():
                figure = measure(run, round_no, Path(tmp))
                if round_no:
                    times[name].append(figure)
        assert process.stdin is not None
        process.stdin.close()
    base = statistics.median(times["wat2wasm"])
    print(f"WAT assembly, {N} distinct small modules one at a time, median of {RUNS} rounds")
    print(f"{'way':<12}{'us/compile':>12}{'vs wat2wasm':>14}")
    for name, figures in times.items():
        median = statistics.median(figures)
        print(f"{name:<12}{median:>12.0f}{median / base:>13.2f}x")


if __name__ == "__main__":
    main()
