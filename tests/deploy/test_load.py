"""The load test runs: a few seconds of ``bench/load.py`` (what ``make load`` runs) against
its own pf serve, which requires a token, sends every kind of request with no failure
and writes its HTML report."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

from tests.tools import needs_tool

ROOT = Path(__file__).resolve().parents[2]
KINDS = {
    "GET /api/health",
    "GET /api/status",
    "POST /api/compile",
    "POST /api/build/wat",
    "WS connect",
    "WS build_completed",
}


@needs_tool("wat2wasm", "bwrap")
def test_a_short_load_run_sends_every_request_without_failure(tmp_path: Path) -> None:
    html = tmp_path / "report.html"
    done = subprocess.run(
        [
            *(sys.executable, str(ROOT / "bench" / "load.py")),
            *("--duration", "5s", "--users", "4", "--spawn-rate", "4", "--ws-users", "1"),
            *("--html", str(html), "--csv", str(tmp_path / "locust")),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with (tmp_path / "locust_stats.csv").open(newline="") as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    assert KINDS <= set(rows), f"not sent: {KINDS - set(rows)}"
    for name in KINDS:
        assert int(rows[name]["Request Count"]) >= 1, name
        assert rows[name]["Failure Count"] == "0", name
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    # What it printed: a line per kind with its figures, and where the report is.
    for name in KINDS:
        assert any(line.startswith(name) for line in done.stdout.splitlines()), name
    assert f"HTML report: {html}" in done.stdout
    page = html.read_text()
    assert "<html" in page.lower() and "POST /api/build/wat" in page
