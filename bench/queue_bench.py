"""Shared mode's build queue against pf serve's in-process one, side by side in one run.

Starts a private PostgreSQL and Redis (tests/pg.py, tests/redisd.py), pf serve in shared
mode and pf worker processes, and an embedded pf serve for comparison, then prints:

  pickup      submit -> the build starts running (its record's startTime - createdTime),
              p50 and p99 over builds sent one at a time: through Procrastinate vs the
              in-process Scheduler (goal: <= 100 ms through the queue)
  throughput  compiles per second of 100 distinct small C builds with 1 and 2 workers
              (each running one build at a time), 1 worker running 2 at a time, and
              in-process (PF_JOBS=2)
  recovery    SIGKILL of the worker running a build -> another worker runs it (its
              record's attempt 1 is running), and -> it completed
  cancel      DELETE /api/builds/{id} of a running build -> its record says cancelled
  duplicates  builds recorded completed more than once, and runs that reached their
              end more than once (a "built" line per run in the log), expected 0

Usage: python bench/queue_bench.py [--builds 100] [--rounds 3]. Numbers are from one
noisy, shared 2-core machine: compare the columns, not the absolute values.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.serverkit import PF, PfServer, percentile  # noqa: E402
from tests.pg import PgCluster  # noqa: E402
from tests.redisd import RedisServer  # noqa: E402

CLANG = "/usr/bin/clang-14"
TIMEOUT = 120.0


def _c(tag: str) -> dict[str, str]:
    return {"main.c": f"/* {tag} {uuid.uuid4()} */\nint add(int a, int b) {{ return a + b; }}\n"}


def _held_clang(directory: Path, seconds: float) -> Path:
    """A clang that waits ``seconds`` first: a build that stays running for a while."""
    script = directory / f"held-clang-{seconds}.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version|-v|-dumpversion) exec {CLANG} "$@";; esac\n'
        f"sleep {seconds}\n"
        f'exec {CLANG} "$@"\n'
    )
    script.chmod(0o755)
    return script


class Worker:
    def __init__(self, env: dict[str, str], projects: Path, concurrency: int = 1) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pf-bench-worker-"))
        full = {k: v for k, v in os.environ.items() if not k.startswith("PF")}
        full.update(env, PF_CACHE_DIR=str(self.dir / "cache"))
        self.log = self.dir / "worker.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [PF, "worker", "--projects", str(projects), "--concurrency", str(concurrency)],
                cwd=self.dir,
                env=full,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + TIMEOUT
        while b"pf worker ready" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pf worker did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(60)


@contextmanager
def workers(
    env: dict[str, str], projects: Path, count: int, concurrency: int = 1
) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for _ in range(count):
            started.append(Worker(env, projects, concurrency))
        yield started
    finally:
        for worker in started:
            worker.stop(signal.SIGKILL)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _submit(http: httpx.Client, tag: str) -> str:
    answer = http.post("/api/compile", json={"language": "c", "files": _c(tag)})
    answer.raise_for_status()
    return str(answer.json()["buildId"])


def _wait(http: httpx.Client, build_id: str, until: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        record: dict[str, Any] = http.get(f"/api/builds/{build_id}").json()
        if record["status"] in until:
            return record
        time.sleep(0.01)
    raise TimeoutError(f"{build_id} never reached {until}")


def pickup(url: str, samples: int) -> list[float]:
    """Milliseconds from submission to start, builds sent one at a time."""
    found = []
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(samples):
            record = _wait(http, _submit(http, f"pickup{i}"), ("completed", "failed"))
            found.append((_epoch(record["startTime"]) - _epoch(record["createdTime"])) * 1000)
    return found


def throughput(url: str, builds: int) -> float:
    """Compiles per second of ``builds`` distinct small builds sent at once."""
    with httpx.Client(base_url=url, timeout=30) as http:
        started = time.monotonic()
        ids = [_submit(http, f"batch{i}") for i in range(builds)]
        for build_id in ids:
            record = _wait(http, build_id, ("completed", "failed"))
            assert record["status"] == "completed", record
        return builds / (time.monotonic() - started)


def _attempt(pg_url: str, build_id: str) -> tuple[str, int] | None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT status, attempt FROM builds WHERE id = %s", (build_id,))
        found = row.fetchone()
    return None if found is None else (str(found[0]), int(found[1]))


def recovery(
    env: dict[str, str], server: PfServer, pg_url: str, hold: float
) -> tuple[float, float]:
    """Seconds from SIGKILL of the worker running a build to its re-run starting, and to
    its completion (``hold`` seconds of that are the held compiler's)."""
    with httpx.Client(base_url=server.url, timeout=30) as http:
        with workers(env, server.projects, 1) as [doomed]:
            build_id = _submit(http, "recovery")
            _wait(http, build_id, ("running",))
            with workers(env, server.projects, 1):
                doomed.stop(signal.SIGKILL)
                killed = time.monotonic()
                while _attempt(pg_url, build_id) != ("running", 1):
                    assert time.monotonic() - killed < TIMEOUT
                    time.sleep(0.05)
                taken = time.monotonic() - killed
                record = _wait(http, build_id, ("completed", "failed"))
                assert record["status"] == "completed", record
                return taken, time.monotonic() - killed


def cancel_latency(url: str) -> float:
    """Milliseconds from DELETE of a running (held) build to its record saying cancelled."""
    with httpx.Client(base_url=url, timeout=30) as http:
        build_id = _submit(http, "cancel")
        _wait(http, build_id, ("running",))
        time.sleep(0.3)  # let the held compiler start
        asked = time.monotonic()
        http.delete(f"/api/builds/{build_id}").raise_for_status()
        while True:
            with psycopg.connect(os.environ["PF_BENCH_PG"]) as conn:
                row = conn.execute("SELECT status FROM builds WHERE id = %s", (build_id,))
                status = row.fetchone()
            if status is not None and status[0] == "cancelled":
                return (time.monotonic() - asked) * 1000
            assert time.monotonic() - asked < TIMEOUT
            time.sleep(0.005)


def duplicates(pg_url: str) -> tuple[int, int]:
    """Builds completed, and those whose log shows more than one run reaching its end
    (each run that ends notes "built <file>"; the record itself is one row by its key)."""
    with psycopg.connect(pg_url) as conn:
        completed = conn.execute("SELECT count(*) FROM builds WHERE status = 'completed'")
        done = completed.fetchone()
        runs = conn.execute(
            "SELECT count(*) FROM (SELECT build_id FROM logs WHERE text LIKE 'built %' "
            "GROUP BY build_id HAVING count(*) > 1) AS twice"
        ).fetchone()
    return int(done[0]) if done else 0, int(runs[0]) if runs else 0


def _row(name: str, *cells: str) -> None:
    print(f"  {name:<34}" + "".join(f"{c:>16}" for c in cells))


def _recovery_only(
    args: argparse.Namespace,
    cluster: PgCluster,
    redis: RedisServer,
    base: dict[str, str],
    scratch: Path,
) -> None:
    url = cluster.create_database("bench_queue_recovery")
    env = {
        **base,
        "PF_DATABASE_URL": url,
        "PF_REDIS_URL": redis.url(),
        "PF_TOOL_CLANG": str(_held_clang(scratch, 2.0)),
    }
    if args.stalled_after:
        env["PF_WORKER_STALLED_AFTER"] = args.stalled_after
    with PfServer(env, name="recovery") as api:
        rounds = [recovery(env, api, url, 2.0) for _ in range(args.rounds)]
    taken = [t for t, _ in rounds]
    done = [d for _, d in rounds]
    print(f"pf worker recovery, PF_WORKER_STALLED_AFTER={args.stalled_after or 'default'}")
    _row(
        "SIGKILL -> re-run starts (s)",
        f"{statistics.median(taken):.1f} med",
        f"{max(taken):.1f} max",
    )
    _row(
        "SIGKILL -> completed (s, 2 s held)",
        f"{statistics.median(done):.1f} med",
        f"{max(done):.1f} max",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument(
        "--stalled-after",
        help="PF_WORKER_STALLED_AFTER for the recovery rounds (default: pf's default)",
    )
    parser.add_argument("--recovery-only", action="store_true", help="only the kill rounds")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pf-bench-queue-"))
    cluster, redis = PgCluster(), RedisServer()
    cluster.start()
    redis.start()
    results: dict[str, Any] = {}
    try:
        base = {"PF_SANDBOX": "off", "PF_CCACHE": "0", "PF_RATE_LIMIT": "0"}
        if args.recovery_only:
            return _recovery_only(args, cluster, redis, base, scratch)
        with PfServer({**base, "PF_JOBS": "2"}, name="embedded") as local:
            results["pickup_local"] = pickup(local.url, args.samples)
            results["rate_local"] = throughput(local.url, args.builds)

        pg_url = cluster.create_database("bench_queue")
        os.environ["PF_BENCH_PG"] = pg_url
        shared = {**base, "PF_DATABASE_URL": pg_url, "PF_REDIS_URL": redis.url()}
        with PfServer(shared, name="shared") as api:
            with workers(shared, api.projects, 1):
                results["pickup_queue"] = pickup(api.url, args.samples)
                results["rate_1"] = throughput(api.url, args.builds)
            with workers(shared, api.projects, 2):
                results["rate_2"] = throughput(api.url, args.builds)
            with workers(shared, api.projects, 1, concurrency=2):
                results["rate_1x2"] = throughput(api.url, args.builds)

        held_url = cluster.create_database("bench_queue_held")
        os.environ["PF_BENCH_PG"] = held_url
        hold = 2.0
        held = {
            **base,
            "PF_DATABASE_URL": held_url,
            "PF_REDIS_URL": redis.url(),
            "PF_TOOL_CLANG": str(_held_clang(scratch, hold)),
        }
        with PfServer(held, name="held") as api:
            results["recovery"] = [recovery(held, api, held_url, hold) for _ in range(args.rounds)]
            with workers(held, api.projects, 1):
                results["cancel"] = [cancel_latency(api.url) for _ in range(args.rounds)]
            results["duplicates"] = duplicates(held_url)
    finally:
        redis.destroy()
        cluster.destroy()

    print("pf build queue: Procrastinate on PostgreSQL vs the in-process Scheduler")
    _row("", "queue", "in-process")
    q, local_ms = results["pickup_queue"], results["pickup_local"]
    _row(
        "submit -> running, p50 (ms)",
        f"{statistics.median(q):.1f}",
        f"{statistics.median(local_ms):.1f}",
    )
    _row(
        "submit -> running, p99 (ms)", f"{percentile(q, 99):.1f}", f"{percentile(local_ms, 99):.1f}"
    )
    _row(
        f"compiles/s, {args.builds} builds",
        f"{results['rate_1']:.1f} (1 w)",
        f"{results['rate_local']:.1f} (2 j)",
    )
    _row("", f"{results['rate_2']:.1f} (2 w)", "")
    _row("", f"{results['rate_1x2']:.1f} (1 w x 2)", "")
    taken = [t for t, _ in results["recovery"]]
    done = [d for _, d in results["recovery"]]
    _row(
        "SIGKILL -> re-run starts (s)",
        f"{statistics.median(taken):.1f} med",
        f"{max(taken):.1f} max",
    )
    _row(
        f"SIGKILL -> completed (s, {hold:.0f} s held)",
        f"{statistics.median(done):.1f} med",
        f"{max(done):.1f} max",
    )
    cancel = results["cancel"]
    _row(
        "cancel -> cancelled (ms)", f"{statistics.median(cancel):.0f} med", f"{max(cancel):.0f} max"
    )
    completed, twice = results["duplicates"]
    _row(f"duplicate completions ({completed} builds)", f"{twice}", "")


if __name__ == "__main__":
    main()
