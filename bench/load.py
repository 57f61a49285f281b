"""Run the Locust load test (bench/locustfile.py) headless against a pf serve of its own.

    .venv/bin/python bench/load.py --duration 60s --users 20 --spawn-rate 5
    make load LOAD_DURATION=60s LOAD_USERS=20 LOAD_SPAWN_RATE=5

Starts ``pf serve`` in a temp dir (bench/serverkit.py: its own cache, SQLite file and the
bundled demo projects), creates a token of scope ``build`` first, so the server
requires one as a deployed pf does, and runs Locust with it: warm-up, ramp-up and
sustained load over the health, status, compile, build and WebSocket requests of the
locustfile. The per-client rate limit is off (every Locust user shares one token, and
the limit would measure itself). At the end it prints, per request type, the requests,
req/s, p50/p95/p99 in ms and failures, the failures' messages, and where the HTML report
(``--html``) and Locust's CSV files are. Exit status: Locust's, 1 when any request failed.
``--url`` (with ``--token``) aims it at a running server instead.
"""

from __future__ import annotations

import argparse
import csv
import re
import subprocess
import sys
import time
from pathlib import Path

from serverkit import ROOT, PfServer

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
REPORTS = ROOT / ".pf" / "load"


def _duration(text: str) -> str:
    """``60``, ``60s``, ``2m``, ``1h30m`` as Locust's -t takes them."""
    if not re.fullmatch(r"(\d+h)?(\d+m)?(\d+s?)?", text) or not text:
        raise argparse.ArgumentTypeError(f"expected a duration like 60s, 2m or 90, got {text!r}")
    return text if not text.isdigit() else f"{text}s"


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=_duration, default="60s", help="e.g. 60s, 2m")
    parser.add_argument("--users", type=int, default=20, help="users at the sustained load")
    parser.add_argument("--spawn-rate", type=float, default=5.0, help="users started per second")
    parser.add_argument("--ws-users", type=int, default=2, help="WebSocket users among them")
    parser.add_argument("--html", type=Path, help="the HTML report (default: under .pf/load/)")
    parser.add_argument(
        "--csv", type=Path, help="prefix of Locust's CSV files (default: the report's, less .html)"
    )
    parser.add_argument("--url", help="a running pf serve (default: start one)")
    parser.add_argument("--token", default="", help="its token of scope build, with --url")
    args = parser.parse_args()
    if args.users < 1 or args.spawn_rate <= 0 or args.ws_users < 1:
        parser.error("--users and --ws-users must be at least 1, --spawn-rate positive")
    if args.ws_users >= args.users:
        parser.error("--ws-users must leave at least one HTTP user among --users")
    return args


def _locust(args: argparse.Namespace, url: str, token: str, html: Path, prefix: Path) -> int:
    argv = [
        *(sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless"),
        *("--host", url, "-u", str(args.users), "-r", str(args.spawn_rate)),
        *("-t", args.duration, "--stop-timeout", "10", "--only-summary"),
        *("--html", str(html), "--csv", str(prefix), "--loglevel", "WARNING"),
        *("--pf-token", token, "--pf-ws-users", str(args.ws_users)),
    ]
    # Locust's own summary goes to its stderr, kept for when something went wrong.
    done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode not in (0, 1):  # 1: some requests failed, reported below
        print(done.stdout, file=sys.stderr)
    return done.returncode


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def report(prefix: Path) -> int:
    """Print the per-request figures of Locust's CSV files; returns the failures."""
    stats = _rows(Path(f"{prefix}_stats.csv"))
    print(
        f"{'request':<26} {'count':>7} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'failures':>9}"
    )
    failures = 0
    for row in stats:
        name = row["Name"] if row["Type"] != "" else "Aggregated"
        label = "all requests" if name == "Aggregated" else name
        print(
            f"{label:<26} {row['Request Count']:>7} {float(row['Requests/s']):>8.1f} "
            f"{row['50%']:>8} {row['95%']:>8} {row['99%']:>8} {row['Failure Count']:>9}"
        )
        if name != "Aggregated":
            failures += int(row["Failure Count"])
    errors = Path(f"{prefix}_failures.csv")
    for row in _rows(errors) if errors.exists() else []:
        print(f"  failed {row['Occurrences']}x {row['Method']} {row['Name']}: {row['Error']}")
    return failures


def main() -> int:
    args = _parse()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    html = (args.html or REPORTS / f"load-{stamp}.html").resolve()
    html.parent.mkdir(parents=True, exist_ok=True)
    prefix = (args.csv or html.with_suffix("")).resolve()
    prefix.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"load: {args.users} users ({args.ws_users} on WebSockets), {args.spawn_rate:g}/s, "
        f"{args.duration}: warm-up, ramp-up, sustained"
    )
    if args.url:
        code = _locust(args, args.url, args.token, html, prefix)
        rss = None
    else:
        server = PfServer(name="load")
        try:
            token = server.pf("token", "create", "load", "--scope", "build")
        except BaseException:
            server.__exit__()
            raise
        with server:
            print(f"load: pf serve at {server.url} (pid {server.pid}), a build token required")
            code = _locust(args, server.url, token, html, prefix)
            rss = server.rss_mb()
    failures = report(prefix)
    if rss is not None:
        print(f"pf serve RSS at the end: {rss:.0f} MB")
    print(f"HTML report: {html}")
    print(f"CSV files:   {prefix}_stats.csv, _stats_history.csv, _failures.csv")
    return 1 if failures or code else 0


if __name__ == "__main__":
    sys.exit(main())
