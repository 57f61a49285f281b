"""pf serve with several API processes, and the ASGI servers it was chosen among.

Everything runs on loopback against a private PostgreSQL and Redis started here (shared
mode: pf serve --workers N needs both); every process started here is stopped here. A
wrk figure (wrk -t2 -c64 --latency, the client on the same 2 cores) is the median of
PF_BENCH_RUNS runs (3) of PF_BENCH_SECONDS (3 s) after a 1 s warm-up.

  API processes     GET /api/health and GET /api/status (100 builds recorded) req/s with
                    1 and with 2 API processes, side by side, and the ratio (goal >= 1.4x)
  ASGI servers      pf's app under pf serve (uvicorn with pf's protocols), the same with
                    WebSocket events sent through plain ASGI instead of pf.wire, stock
                    uvicorn (public options only), Granian and Hypercorn: /api/health req/s and
                    p99; RSS with 1,000 idle WebSocket clients; POST -> build_started p99
                    with 1,000 per-event WebSocket clients (20 builds 0.25 s apart). A
                    server that is not installed is skipped with a note.

The whole run takes about four minutes; ``procs_bench.py processes`` or ``... asgi`` runs
one part.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from server_bench import (
    RUNS,
    SECONDS,
    STATUS_BUILDS,
    WS_BUILDS,
    _post_builds,
    record_status_builds,
)
from serverkit import (
    PfServer,
    WsFleet,
    _wait_listening,
    fetch,
    free_port,
    get_json,
    median,
    node_ws_package,
    percentile,
    wrk,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pg import PgCluster  # noqa: E402
from tests.redisd import RedisServer  # noqa: E402

BIN = Path(sys.executable).parent
WS_CLIENTS = 1000
WS_PROCESSES = 4
GOAL = 1.4


def tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        with contextlib.suppress(OSError), open(f"/proc/{current}/task/{current}/children") as f:
            pending += [int(child) for child in f.read().split()]
    return found


def rss_tree_mb(pid: int) -> float:
    """VmRSS of a process and all its descendants, in MB."""
    total = 0.0
    for current in tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{current}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024 / 1e6
    return total


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process."""
    tick = os.sysconf("SC_CLK_TCK")
    spent = {}
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
            spent[pid] = (int(fields[11]) + int(fields[12])) / tick
    return spent


@dataclass
class Figure:
    rps: float
    p99: float
    failures: int
    cpu: list[float]  # each server process's share of one core while measured, busiest first


def figure(url: str, pid: int) -> Figure:
    """The median of RUNS wrk runs after a warm-up, and the CPU the server's processes
    used meanwhile (a server under 100% of a core was not what limited the rate)."""
    wrk(url, seconds=1)
    pids = tree(pid)
    before, started = cpu_seconds(pids), time.monotonic()
    runs = [wrk(url, seconds=SECONDS) for _ in range(RUNS)]
    after, elapsed = cpu_seconds(pids), time.monotonic() - started
    shares = sorted(((after[p] - before.get(p, 0.0)) / elapsed for p in after), reverse=True)
    return Figure(
        median([r.rps for r in runs]),
        median([r.latency_ms.get(99, float("nan")) for r in runs]),
        sum(r.non_2xx + r.socket_errors for r in runs),
        [share for share in shares if share >= 0.01],
    )


# API processes ---------------------------------------------------------------------------


def process_figures(shared: Mapping[str, str]) -> None:
    # Every server runs builds itself (PF_LOCAL_BUILDS=1) so the 100 recorded ones are in
    # the store the others list; no build runs while they are measured.
    env = {**shared, "PF_LOCAL_BUILDS": "1"}
    with PfServer(env, name="record") as server:
        record_status_builds(server)
    results: dict[int, dict[str, Figure]] = {}
    for count in (1, 2):
        with PfServer({**env, "PF_API_WORKERS": str(count)}, name=f"procs{count}") as server:
            listed = len(get_json(server.url, "/api/status")["builds"])
            if listed != STATUS_BUILDS:
                raise RuntimeError(f"/api/status lists {listed} builds, not {STATUS_BUILDS}")
            results[count] = {
                path: figure(f"{server.url}{path}", server.pid)
                for path in ("/api/health", "/api/status")
            }
    print(
        f"{'API processes (wrk -t2 -c64)':<30}{'1 process':>12}{'2 processes':>14}{'ratio':>8}"
        f"  {'goal':<12}  server CPU, % of a core per process (1 | 2)"
    )
    for path in ("/api/health", "/api/status"):
        one, two = results[1][path], results[2][path]
        ratio = two.rps / one.rps if one.rps else 0.0
        failures = one.failures + two.failures
        verdict = "ok" if ratio >= GOAL and failures == 0 else "MISSED"
        label = f"GET {path}" + (f" ({STATUS_BUILDS} builds)" if path == "/api/status" else "")
        cpu = " ".join(f"{c:.0%}" for c in one.cpu) + " | " + " ".join(f"{c:.0%}" for c in two.cpu)
        print(
            f"{label:<30}{one.rps:>10,.0f}/s{two.rps:>12,.0f}/s{ratio:>7.2f}x"
            f"  >= {GOAL}x {verdict:<6}  {cpu}" + (f"  ({failures} failures)" if failures else "")
        )


# ASGI servers ----------------------------------------------------------------------------


class AsgiServer(PfServer):
    """pf's app (bench/asgiapp.py) under an ASGI server's own command line."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str]) -> None:
        super().__init__(env, name=name)
        self.argv = argv

    def start(self) -> AsgiServer:
        self.port = free_port()
        env = {
            **self.env(),
            "PF_BENCH_ROOT": str(self.web),
            "PF_BENCH_PROJECTS": str(self.projects),
            "PF_LOG_LEVEL": "warning",
        }
        argv = [part.replace("{port}", str(self.port)) for part in self.argv]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=Path(__file__).resolve().parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        _wait_listening(self.port, self.proc, self.argv[0])
        return self


def asgi_servers() -> list[tuple[str, list[str] | None]]:
    """(label, argv with {port}; None: pf serve itself) for each server installed."""
    found: list[tuple[str, list[str] | None]] = [
        ("pf serve (uvicorn + pf protocols)", None),
        ("pf serve, WS through plain ASGI send", [sys.executable, "asgiapp.py", "{port}"]),
    ]
    uvicorn = [
        *(str(BIN / "uvicorn"), "--factory", "asgiapp:app", "--port", "{port}"),
        *("--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio"),
        *("--no-access-log", "--log-level", "warning"),
    ]
    found.append(("uvicorn, public options only", uvicorn))
    if (BIN / "granian").exists():
        granian = [
            *(str(BIN / "granian"), "--interface", "asgi", "--factory", "--loop", "uvloop"),
            *("--port", "{port}", "--no-log", "asgiapp:app"),
        ]
        found.append(("Granian (Rust HTTP, ASGI)", granian))
    if (BIN / "hypercorn").exists():
        hypercorn = [
            *(str(BIN / "hypercorn"), "--worker-class", "uvloop"),
            *("-b", "127.0.0.1:{port}", "asgiapp:app()"),
        ]
        found.append(("Hypercorn (h11, wsproto)", hypercorn))
    return found


@contextlib.contextmanager
def started(label: str, argv: list[str] | None) -> Iterator[PfServer]:
    env = {"PF_MAX_WS_CONNECTIONS": str(WS_CLIENTS * 2)}
    server = PfServer(env, name="asgi") if argv is None else AsgiServer("asgi", argv, env)
    with server:
        yield server


def asgi_figures() -> None:
    missing = [name for name in ("granian", "hypercorn") if not (BIN / name).exists()]
    print(
        f"\n{'ASGI server (pf app)':<36}{'health req/s':>13}{'p99':>9}"
        f"{'RSS 1k idle WS':>16}{'WS p99':>10}  notes"
    )
    with node_ws_package() as node_dir:
        for label, argv in asgi_servers():
            with started(label, argv) as server:
                health = figure(f"{server.url}/api/health", server.pid)
                rps, p99, failures = health.rps, health.p99, health.failures
                asyncio.run(fetch(server.url, "GET", "/api/health"))
                ws_url = f"ws://127.0.0.1:{server.port}/ws"
                with WsFleet(ws_url, WS_CLIENTS, WS_PROCESSES, node_dir) as fleet:
                    connected, failed = fleet.connected()
                    time.sleep(1)  # let the connections settle before reading memory
                    rss = rss_tree_mb(server.pid)
                    sent = asyncio.run(_post_builds(server.port, 20_000))
                    reports = fleet.events(list(sent))
                latencies = [
                    (at - sent[build]) * 1000
                    for report in reports
                    for build, events in report.items()
                    for kind, at in events
                    if kind == "build_started"
                ]
                complete = len(latencies) == WS_CLIENTS * WS_BUILDS
                notes = [f"{connected} connected"]
                if failed or failures:
                    notes.append(f"{failed} WS failed, {failures} HTTP failures")
                if not complete:
                    notes.append(f"{len(latencies):,}/{WS_CLIENTS * WS_BUILDS:,} build_started")
                print(
                    f"{label:<36}{rps:>11,.0f}/s{p99:>7.1f}ms{rss:>13.1f} MB"
                    f"{percentile(latencies, 99):>8.1f}ms  {'; '.join(notes)}",
                    flush=True,
                )
    for name in missing:
        print(f"  ({name} is not installed: pip install {name} to measure it)")


def main() -> None:
    parts = set(sys.argv[1:]) or {"processes", "asgi"}  # one part alone: name it
    print(
        f"pf serve processes benchmark - {os.cpu_count()} cores, loopback, client on the same "
        f"cores; median of {RUNS} wrk runs of {SECONDS} s"
    )
    started_at = time.monotonic()
    if "processes" in parts:
        cluster = PgCluster()
        redis = RedisServer()
        try:
            cluster.start()
            redis.start()
            shared = {
                "PF_DATABASE_URL": cluster.create_database("pf_bench"),
                "PF_REDIS_URL": redis.url(),
            }
            process_figures(shared)
        finally:
            redis.destroy()
            cluster.destroy()
    if "asgi" in parts:
        asgi_figures()
    print(f"total {time.monotonic() - started_at:.0f} s")


if __name__ == "__main__":
    main()
