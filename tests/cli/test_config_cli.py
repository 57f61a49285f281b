"""``pf config`` through the real ``pf``: values, their environment variables and origins."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pf.config import environment_names

PF = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "pf")


def _config(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PF_")}
    return subprocess.run(
        [PF, "config", *args],
        cwd=cwd,
        env={**environ, **env, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_every_setting_with_its_origin(tmp_path: Path) -> None:
    (tmp_path / "pf.toml").write_text("[pf]\njobs = 3\nmax_queue = 7\n")
    done = _config(
        tmp_path,
        "--json",
        PF_MAX_QUEUE="50",
        PF_DATABASE_URL="postgresql://pf:hunter2@db.example:5432/pf",
        PF_TOOL_WAT2WASM="/opt/wabt/wat2wasm",
    )
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert set(environment_names()) <= set(rows)
    assert rows["jobs"] == {"name": "jobs", "env": "PF_JOBS", "value": 3, "origin": "pf.toml"}
    assert rows["max_queue"]["value"] == 50 and rows["max_queue"]["origin"] == "environment"
    assert rows["max_body"]["origin"] == "default"
    assert rows["database_url"]["value"] == "postgresql://pf:***@db.example:5432/pf"
    assert "hunter2" not in done.stdout
    assert rows["tools.wat2wasm"]["value"] == "/opt/wabt/wat2wasm"


def test_text_output_and_a_bad_value(tmp_path: Path) -> None:
    done = _config(tmp_path, PF_CORS_ORIGINS="https://a.example,https://b.example")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert lines["PF_CORS_ORIGINS"].split()[1] == "https://a.example,https://b.example"
    assert lines["PF_CORS_ORIGINS"].endswith("(environment)")
    assert lines["PF_REDIS_URL"].split()[1] == "(unset)"
    bad = _config(tmp_path, PF_JOBS="many")
    assert bad.returncode != 0
    assert "PF_JOBS" in bad.stderr and "expected a whole number, got 'many'" in bad.stderr
