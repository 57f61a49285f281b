"""pf worker runs compiles as confined as pf serve does: it does not start when the
sandbox cannot, and a SIGKILL of it ends the compiler it was running."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import pids_with_word
from tests.sandbox.test_serve_lifetime import _wait, slow_clang
from tests.server.conftest import wait_for
from tests.server.test_farm import Farm, farm
from tests.tools import needs_tool

__all__ = ["farm", "slow_clang"]  # the fixtures, imported for pytest


def test_a_worker_whose_sandbox_cannot_start_does_not_start(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PF_DATABASE_URL": pg_url,
        "PF_REDIS_URL": redis_url,
        "PF_CACHE_DIR": str(tmp_path / "cache"),
        "PF_TOOL_BWRAP": str(tmp_path / "no-such-bwrap"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pf", "worker", "--concurrency", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "pf worker ready" not in done.stderr
    assert (
        f"compiles are refused: the sandbox cannot start: PF_TOOL_BWRAP names "
        f"{tmp_path / 'no-such-bwrap'}, which is not an executable" in done.stderr
    )
    assert "apt-get install bubblewrap" in done.stderr


def test_a_worker_with_the_sandbox_off_warns_as_it_starts(farm: Farm) -> None:
    farm.server()
    worker = farm.worker(PF_SANDBOX="off")
    assert "PF_SANDBOX=off: compiles run unconfined" in worker.log_path.read_text()


@needs_tool("bwrap")
def test_sigkill_of_a_worker_ends_its_compiler(farm: Farm, slow_clang: tuple[Path, str]) -> None:
    tool, marker = slow_clang
    env = {"PF_CCACHE": "0", "PF_TOOL_CLANG": str(tool)}
    server = farm.server(**env)
    worker = farm.worker(**env)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        post = {"language": "c", "files": {"slow.c": "int slow(void) { return 2; }\n"}}
        answer = http.post("/api/compile", json=post)
        assert answer.status_code in (200, 202), answer.text
        wait_for(http, answer.json()["buildId"], timeout=60, until=("running",))
        _wait(lambda: pids_with_word(marker), "the compile never started", within=60)
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(30)
    _wait(
        lambda: not pids_with_word(marker),
        f"left running: {pids_with_word(marker)}",
        within=5.0,
    )
