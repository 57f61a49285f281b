"""``pf worker`` as users run it: it refuses to start outside shared mode, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def pf_worker(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PF_")}
    return subprocess.run(
        [sys.executable, "-m", "pf", "worker", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**clean, **env},
        timeout=60,
    )


def test_without_postgresql_and_redis_it_says_what_it_needs(tmp_path: Path) -> None:
    done = pf_worker(tmp_path, "--projects", str(tmp_path))
    assert done.returncode == 1
    assert "pf worker needs shared mode" in done.stderr
    assert "PF_DATABASE_URL" in done.stderr and "Traceback" not in done.stderr
    sqlite = pf_worker(tmp_path, "--projects", str(tmp_path), PF_REDIS_URL="redis://127.0.0.1:1/0")
    assert sqlite.returncode == 1 and "pf worker needs shared mode" in sqlite.stderr


def test_a_bad_concurrency_is_a_usage_error(tmp_path: Path) -> None:
    done = pf_worker(tmp_path, "--concurrency", "0")
    assert done.returncode == 2
    assert "--concurrency must be positive" in done.stderr
