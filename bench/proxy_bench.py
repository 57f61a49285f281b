"""pf behind the shipped nginx (deploy/nginx/pf.conf): a 1 MiB artifact over HTTP/2 and
HTTP/1.1 through nginx with TLS, beside the same file straight from pf, in one run.

One pf serve (one process) serves a 1 MiB wasm module from its web root (the static
layer that serves build artifacts); nginx runs the shipped configuration with one worker
and its access log off (tests/nginx.py renders it: ports, certificate, upstream), in
front of that pf. Every load keeps 32 requests in flight on one client thread:

  HTTP/2 through nginx     h2load -t1 -c4 -m8 (4 TLS connections, 8 streams each)
  HTTP/1.1 through nginx   wrk -t1 -c32 over TLS; and h2load --h1 -c32, the same tool
                           as the HTTP/2 row, to tell the protocol from the tool
  direct to pf             wrk -t1 -c32, plain HTTP on pf's own port

Each figure is the median of RUNS runs of SECONDS after a 1 s warm-up (PF_BENCH_RUNS,
PF_BENCH_SECONDS: 3 and 3), connections and TLS handshakes included; every run is listed
under the table, and the load average before the first is printed. pf, nginx and the load
generator share this machine's cores, as they would on one host. About a minute.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from server_bench import wasm_module
from serverkit import PfServer, median, wrk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.nginx import Proxy  # noqa: E402

SECONDS = int(os.environ.get("PF_BENCH_SECONDS", "3"))
RUNS = int(os.environ.get("PF_BENCH_RUNS", "3"))
IN_FLIGHT = 32
H2_CONNECTIONS = 4
ARTIFACT = "bench.wasm"
H2LOAD = "/usr/bin/h2load"
NOTES: list[str] = []


def h2load(url: str, seconds: int, *, h1: bool = False) -> tuple[float, int]:
    """req/s and failed requests of one h2load run (HTTP/2 unless ``h1``)."""
    if h1:
        shape = ["--h1", f"-c{IN_FLIGHT}", "-m1"]
    else:
        shape = [f"-c{H2_CONNECTIONS}", f"-m{IN_FLIGHT // H2_CONNECTIONS}"]
    out = subprocess.run(
        [H2LOAD, "-t1", *shape, f"-D{seconds}", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rate = re.search(r"finished in [\d.]+s, ([\d.]+) req/s", out)
    counts = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out)
    if rate is None or counts is None:
        raise RuntimeError(f"unreadable h2load output:\n{out}")
    return float(rate[1]), int(counts[1]) - int(counts[2])


def figure(name: str, run: Callable[[int], tuple[float, int]]) -> tuple[float, int]:
    """The median req/s of RUNS runs of ``run(seconds)`` after a 1 s warm-up, and the
    failures of all runs."""
    run(1)
    runs = [run(SECONDS) for _ in range(RUNS)]
    NOTES.append(f"{name}: " + ", ".join(f"{rps:,.0f}" for rps, _ in runs))
    return median([rps for rps, _ in runs]), sum(failed for _, failed in runs)


def _wrk(url: str, seconds: int) -> tuple[float, int]:
    result = wrk(url, seconds=seconds, threads=1, connections=IN_FLIGHT)
    return result.rps, result.non_2xx + result.socket_errors


def main() -> None:
    for tool in (H2LOAD, "/usr/sbin/nginx"):
        if not Path(tool).exists():
            raise SystemExit(f"{tool} is missing: scripts/setup.sh bench installs it")
    print(
        f"pf behind nginx - {os.cpu_count()} cores, loopback, 1 MiB wasm, {IN_FLIGHT} requests "
        f"in flight, median of {RUNS} x {SECONDS} s; load average before: "
        f"{os.getloadavg()[0]:.1f} (other work on the machine skews every row)"
    )
    with PfServer(name="proxy") as server:
        (server.web / ARTIFACT).write_bytes(wasm_module())
        direct = f"{server.url}/{ARTIFACT}"
        with Proxy(f"127.0.0.1:{server.port}", access_log=False) as proxy:
            proxied = f"{proxy.url}/{ARTIFACT}"
            rows = [
                (
                    "HTTP/2 through nginx (h2load)",
                    figure("h2 nginx", lambda s: h2load(proxied, s)),
                ),
                (
                    "HTTP/1.1 through nginx (wrk)",
                    figure("h1 nginx wrk", lambda s: _wrk(proxied, s)),
                ),
                (
                    "HTTP/1.1 through nginx (h2load --h1)",
                    figure("h1 nginx h2load", lambda s: h2load(proxied, s, h1=True)),
                ),
                ("HTTP/1.1 direct to pf (wrk)", figure("direct wrk", lambda s: _wrk(direct, s))),
            ]
    baseline = rows[-1][1][0]
    print(f"{'GET /bench.wasm (1 MiB)':<40}{'req/s':>10}{'vs direct':>11}  failed")
    for label, (rps, failed) in rows:
        print(f"{label:<40}{rps:>10,.0f}{rps / baseline:>10.2f}x  {failed}")
    print("runs (req/s): " + "; ".join(NOTES))


if __name__ == "__main__":
    main()
