"""The alternative to Procrastinate, measured the same way: Dramatiq on Redis.

Standalone (pf does not use Dramatiq): a private Redis (tests/redisd.py), Dramatiq
workers running a task that holds for a few seconds, and SIGKILL of the worker running
it. Prints the time from the kill to the task starting again on the other worker and to
its completion, and how many times it completed (duplicates), over a few rounds. The
broker is tuned as far as it goes: a 5 s heartbeat timeout and maintenance (which gives
dead workers' messages back) on every command. Dramatiq has no abort of a running task
without the dramatiq-abort add-on, so cancel latency is not measured here.

Dramatiq is a development dependency of pf (installed by scripts/setup.sh), not a
runtime one. ``make bench`` runs this right after bench/queue_bench.py.
Usage: python bench/dramatiq_compare.py [--rounds 3] [--hold 2]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.redisd import RedisServer  # noqa: E402

TASKS = """\
import os, time
import dramatiq, redis
from dramatiq.brokers.redis import RedisBroker

URL = os.environ["DQ_REDIS"]
broker = RedisBroker(url=URL, heartbeat_timeout=5000, maintenance_chance=1_000_000)
dramatiq.set_broker(broker)
r = redis.Redis.from_url(URL)


@dramatiq.actor(max_retries=0)
def hold(tag, seconds):
    r.rpush(f"started:{tag}", os.getpid())
    time.sleep(seconds)
    r.rpush(f"done:{tag}", os.getpid())
"""

TIMEOUT = 120.0


def _worker(directory: Path, url: str) -> subprocess.Popen[bytes]:
    """A Dramatiq worker (one process, one thread), returned once it consumes."""
    env = {**os.environ, "DQ_REDIS": url, "PYTHONPATH": str(directory)}
    path = directory / f"worker-{uuid.uuid4().hex[:6]}.log"
    with path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "dq_tasks", "--processes", "1", "--threads", "1"],
            cwd=directory,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its process group: the main process and its worker
        )
    _wait(lambda: b"ready for action" in path.read_bytes(), "the worker to start")
    return proc


def _count(client: object, key: str) -> int:
    return int(client.llen(key))  # type: ignore[attr-defined]


def _wait(condition: object, what: str) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > TIMEOUT:
            raise TimeoutError(what)
        time.sleep(0.02)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hold", type=float, default=2.0)
    args = parser.parse_args()
    try:
        import redis
    except ImportError:
        sys.exit("redis-py is missing: run scripts/setup.sh first")
    try:
        import dramatiq  # noqa: F401
    except ImportError:
        sys.exit("dramatiq is missing: .venv/bin/pip install 'dramatiq[redis]>=2,<3'")
    directory = Path(tempfile.mkdtemp(prefix="pf-bench-dramatiq-"))
    (directory / "dq_tasks.py").write_text(TASKS)
    server = RedisServer()
    server.start()
    url = server.url()
    os.environ["DQ_REDIS"] = url
    sys.path.insert(0, str(directory))
    from dq_tasks import hold  # type: ignore[import-not-found]

    client = redis.Redis.from_url(url)
    rerun, completed, duplicates = [], [], 0
    try:
        for round_ in range(args.rounds):
            tag = f"r{round_}"
            doomed = _worker(directory, url)
            hold.send(tag, args.hold)
            _wait(lambda tag=tag: _count(client, f"started:{tag}") == 1, "the task to start")
            spare = _worker(directory, url)
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait()
            killed = time.monotonic()
            _wait(lambda tag=tag: _count(client, f"started:{tag}") == 2, "the re-run")
            rerun.append(time.monotonic() - killed)
            _wait(lambda tag=tag: _count(client, f"done:{tag}") >= 1, "the completion")
            completed.append(time.monotonic() - killed)
            time.sleep(args.hold + 1)  # a second completion would have come by now
            duplicates += max(0, _count(client, f"done:{tag}") - 1)
            os.killpg(spare.pid, signal.SIGTERM)
            spare.wait(30)
    finally:
        server.destroy()
    print("Dramatiq 2 on Redis, 5 s heartbeat timeout, maintenance on every command")
    print(
        f"  SIGKILL -> re-run starts (s)   {statistics.median(rerun):6.1f} med "
        f"{max(rerun):6.1f} max"
    )
    print(
        f"  SIGKILL -> completed (s, {args.hold:.0f} s held) "
        f"{statistics.median(completed):6.1f} med {max(completed):6.1f} max"
    )
    print(f"  duplicate completions         {duplicates:6d} ({args.rounds} tasks)")
    print("  cancel of a running task      not in Dramatiq itself (dramatiq-abort add-on)")


if __name__ == "__main__":
    main()
