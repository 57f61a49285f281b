"""Load-test scenario for pf serve: a steady arrival rate of health checks and builds.

Like the original server's load-testing guide: for a fixed time, requests arrive at a
fixed rate (open loop: they are sent on schedule whether or not earlier ones were
answered, and latency counts from the scheduled moment, so a stalled server cannot
hide its stall), a share of them build requests and the rest health checks. At the
end it reports, per kind, latency percentiles, status codes and errors; then waits
for the accepted builds to finish and reports how they ended; and the server's RSS.

    .venv/bin/python bench/server_load.py --seconds 30 --rate 200
    .venv/bin/python bench/server_load.py --builds distinct --build-share 0.5
    .venv/bin/python bench/server_load.py --url http://127.0.0.1:8080   # a running server

Without --url it starts its own ``pf serve`` in a temp dir (stopped at the end). Build
requests (--builds): ``project`` (default) POSTs /api/build/{c,rust,wat,fortran} of the
bundled demo in turn (real compiles first, cache hits after: a team rebuilding an
unchanged project); ``distinct`` POSTs /api/compile with a new WAT module each time
(every one a real compile, queued); ``hits`` POSTs one WAT module again and again.
Exit status 1 if any request failed in transport or got a 5xx other than 503 (503 with
Retry-After is the queue's designed answer to overload).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

from serverkit import (
    Answer,
    Connection,
    Outcome,
    PfServer,
    closed_loop,
    compile_body,
    percentile,
    request_bytes,
)

LANGUAGES = ("c", "rust", "wat", "fortran")
FINISHED = ("completed", "failed", "cancelled")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="how long requests arrive")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument(
        "--build-share", type=float, default=0.2, help="fraction of requests that are builds"
    )
    parser.add_argument(
        "--builds", choices=("project", "distinct", "hits"), default="project", help="see above"
    )
    parser.add_argument("--connections", type=int, default=256, help="most open at once")
    parser.add_argument("--url", help="a running pf serve (default: start one)")
    parser.add_argument(
        "--drain", type=float, default=120.0, help="seconds to wait for builds to finish"
    )
    args = parser.parse_args()
    if args.seconds <= 0 or args.rate <= 0 or not 0 <= args.build_share <= 1:
        parser.error("--seconds and --rate must be positive, --build-share within 0..1")
    return args


def _builder(mode: str) -> Callable[[int], bytes]:
    if mode == "project":
        bodies = [
            request_bytes("POST", f"/api/build/{lang}", b'{"target":"wasm"}') for lang in LANGUAGES
        ]
        return lambda n: bodies[n % len(bodies)]
    if mode == "hits":
        same = request_bytes("POST", "/api/compile", compile_body(0))
        return lambda _: same
    stamp = int(time.time())  # distinct from any earlier run against the same server
    return lambda n: request_bytes("POST", "/api/compile", compile_body(stamp * 1_000_000 + n))


class Scenario:
    """Arrivals on a fixed schedule over a pool of keep-alive connections."""

    def __init__(self, host: str, port: int, args: argparse.Namespace) -> None:
        self.host, self.port = host, port
        self.args = args
        self.outcomes = {"health": Outcome(), "build": Outcome()}
        self.build_ids: list[str] = []
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(args.connections)
        self.health = request_bytes("GET", "/api/health")
        self.build = _builder(args.builds)

    async def one(self, kind: str, raw: bytes, scheduled: float) -> None:
        loop = asyncio.get_running_loop()
        outcome = self.outcomes[kind]
        async with self.slots:
            conn = self.idle.pop() if self.idle else Connection(self.host, self.port)
            try:
                answer = await conn.send(raw)
            except (OSError, asyncio.IncompleteReadError) as exc:
                outcome.errors[type(exc).__name__] += 1
                conn.close()
                return
            if conn.writer is not None:
                self.idle.append(conn)
        outcome.latencies.append(loop.time() - scheduled)
        outcome.statuses[answer.status] += 1
        if kind == "build" and answer.status < 300:
            self.build_ids += _ids(answer)

    async def run(self) -> float:
        loop = asyncio.get_running_loop()
        seconds, rate, share = self.args.seconds, self.args.rate, self.args.build_share
        total = math.floor(seconds * rate)
        tasks: set[asyncio.Task[None]] = set()
        start = loop.time() + 0.05
        report_at = 10.0
        builds = 0
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if math.floor((i + 1) * share) > math.floor(i * share):
                raw, kind = self.build(builds), "build"
                builds += 1
            else:
                raw, kind = self.health, "health"
            task = asyncio.create_task(self.one(kind, raw, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if scheduled - start >= report_at:
                self.progress(report_at, len(tasks))
                report_at += 10.0
        if tasks:
            await asyncio.wait(tasks, timeout=60)
        for task in tasks:
            task.cancel()
        for conn in self.idle:
            conn.close()
        return loop.time() - start

    def progress(self, at: float, in_flight: int) -> None:
        answered = sum(len(o.latencies) for o in self.outcomes.values())
        errors = sum(sum(o.errors.values()) for o in self.outcomes.values())
        print(f"  t={at:>4.0f}s  answered {answered:,}  in flight {in_flight}  errors {errors}")


def _ids(answer: Answer) -> list[str]:
    with contextlib.suppress(ValueError):
        body = json.loads(answer.body)
        if "buildId" in body:
            return [body["buildId"]]
        return list(body.get("buildIds", []))
    return []


def _row(kind: str, outcome: Outcome, seconds: float) -> str:
    ms = [s * 1000 for s in outcome.latencies]
    codes = " ".join(f"{code}:{n}" for code, n in sorted(outcome.statuses.items())) or "-"
    errors = " ".join(f"{name}:{n}" for name, n in outcome.errors.items()) or "0"
    sent = len(ms) + sum(outcome.errors.values())
    return (
        f"  {kind:<7}{sent:>8,}{sent / seconds:>9.1f}/s"
        f"{percentile(ms, 50):>9.1f}{percentile(ms, 90):>9.1f}{percentile(ms, 99):>9.1f}"
        f"{max(ms, default=float('nan')):>9.1f}   {codes:<18} errors {errors}"
    )


async def _finish(host: str, port: int, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """The records of ``ids`` once all have finished (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = await closed_loop(
            host,
            port,
            lambda i: request_bytes("GET", f"/api/builds/{ids[i]}"),
            total=len(ids),
            connections=8,
            keep=True,
        )
        records = [json.loads(a.body) for a in outcome.answers if a.status == 200]
        if all(r.get("status") in FINISHED for r in records) or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.5)


def _report(scenario: Scenario, seconds: float, records: list[dict[str, Any]]) -> bool:
    args = scenario.args
    print(
        f"\nload: {args.rate:g} req/s for {args.seconds:g} s, {args.build_share:.0%} builds "
        f"({args.builds}), up to {args.connections} connections; latency from the scheduled "
        "arrival, ms"
    )
    print(f"  {'kind':<7}{'sent':>8}{'rate':>11}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}   status")
    every = Outcome()
    for kind, outcome in scenario.outcomes.items():
        print(_row(kind, outcome, seconds))
        every.latencies += outcome.latencies
        every.statuses.update(outcome.statuses)
        every.errors.update(outcome.errors)
    print(_row("all", every, seconds))
    states = {s: sum(1 for r in records if r.get("status") == s) for s in FINISHED}
    pending = len(records) - sum(states.values())
    durations = [float(r["duration"]) for r in records if r.get("duration") is not None]
    cached = sum(1 for r in records if r.get("cached"))
    print(
        f"builds accepted {len(scenario.build_ids):,}: "
        + ", ".join(f"{n:,} {s}" for s, n in states.items())
        + f", {pending:,} unfinished; {cached:,} cache hits; duration p50 "
        f"{percentile(durations, 50):.0f} ms, p99 {percentile(durations, 99):.0f} ms"
    )
    failed = sum(every.errors.values()) + sum(
        n for code, n in every.statuses.items() if code >= 500 and code != 503
    )
    return failed == 0


def main() -> int:
    args = _parse()
    server: PfServer | None = None
    try:
        if args.url is None:
            server = PfServer(name="load").start()
            url = server.url
            print(f"pf serve started at {url} (pid {server.pid}, temp dir {server.dir})")
        else:
            url = args.url.rstrip("/")
        host, port = url.removeprefix("http://").split(":")
        scenario = Scenario(host, int(port), args)
        seconds = asyncio.run(scenario.run())
        records = asyncio.run(_finish(host, int(port), scenario.build_ids, args.drain))
        ok = _report(scenario, seconds, records)
        metrics = asyncio.run(_metrics(host, int(port)))
        rss = server.rss_mb() if server is not None else None
        reported = metrics.get("memoryUsage", {}).get("rss")
        shown = rss if rss is not None else (reported / 1e6 if reported else float("nan"))
        print(
            f"server RSS at the end: {shown:.1f} MB; {metrics.get('buildCount', '?')} builds "
            f"recorded, {metrics.get('wsConnections', '?')} WebSocket clients"
        )
        return 0 if ok else 1
    finally:
        if server is not None:
            server.__exit__()


async def _metrics(host: str, port: int) -> dict[str, Any]:
    conn = Connection(host, port)
    try:
        answer = await conn.send(request_bytes("GET", "/api/metrics"))
        metrics: dict[str, Any] = json.loads(answer.body)
        return metrics
    finally:
        conn.close()


if __name__ == "__main__":
    sys.exit(main())
