"""A confined resident process against one confined process per request.

The same small Python program (it echoes a 1 KiB request) answers REQUESTS requests
(PF_BENCH_REQUESTS, 300) under PF_SANDBOX=bwrap, one thread calling after another:

  resident        pf.sandbox.resident: one process started once, a frame out and a
                  frame back per request (start-up paid by the first request only)
  per process     pf.sandbox.run of compile_command: one bubblewrap and one Python per
                  request, the way a one-shot compile step runs

Printed side by side: the median and p95 per request, and the first resident request
(the start-up). Takes under a minute.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pf.config import load_settings
from pf.sandbox import (
    Confinement,
    Limits,
    call_resident,
    compile_command,
    run,
    shutdown_residents,
)

REQUESTS = int(os.environ.get("PF_BENCH_REQUESTS", "300"))
PYTHON = "/usr/bin/python3"
PROGRAM = r"""
import struct, sys
while True:
    head = sys.stdin.buffer.read(4)
    if len(head) < 4:
        sys.exit(0)
    body = sys.stdin.buffer.read(struct.unpack(">I", head)[0])
    sys.stdout.buffer.write(head + body)
    sys.stdout.buffer.flush()
"""
ONCE = "import sys; sys.stdout.write('x' * 1024)"


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    return f"median {statistics.median(ordered) * 1000:7.2f} ms   p95 {p95 * 1000:7.2f} ms"


def main() -> None:
    settings = load_settings()
    folder = Path(tempfile.mkdtemp(prefix="pf-resident-bench-"))
    folder.chmod(0o755)
    (folder / "program.py").write_text(PROGRAM)
    argv = [PYTHON, str(folder / "program.py")]
    payload = b"x" * 1024
    resident: list[float] = []
    first = 0.0
    for i in range(REQUESTS + 1):
        started = time.perf_counter()
        reply = call_resident(settings, argv, [folder], payload, timeout=30, max_reply=4096)
        elapsed = time.perf_counter() - started
        assert reply.payload == payload, reply
        if i == 0:
            first = elapsed
        else:
            resident.append(elapsed)
    shutdown_residents()

    scratch = Path(tempfile.mkdtemp(prefix="pf-resident-bench-ws-"))
    scratch.chmod(0o777)
    limits = Limits(timeout=30)
    each: list[float] = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        command = compile_command(
            [PYTHON, "-c", ONCE],
            env={"LC_ALL": "C.UTF-8"},
            confinement=Confinement(scratch),
            settings=settings,
        )
        done = run(command.argv, cwd=scratch, env=command.env, limits=limits, user=command.user)
        each.append(time.perf_counter() - started)
        assert done.ok and len(done.stdout) == 1024, done
    shutil.rmtree(folder)
    shutil.rmtree(scratch)
    print(f"resident process, {REQUESTS} requests of 1 KiB (PF_SANDBOX=bwrap)")
    print(f"  resident       {_ms(resident)}   first request {first * 1000:.1f} ms")
    print(f"  per process    {_ms(each)}")
    ratio = statistics.median(each) / statistics.median(resident)
    print(f"  per process / resident (median): {ratio:.0f}x")


if __name__ == "__main__":
    main()
