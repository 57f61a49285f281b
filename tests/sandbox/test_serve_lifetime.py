"""A real pf serve killed with SIGKILL leaves none of its task or compile processes running."""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import pids_with_word
from tests.server.conftest import Server, make_server, wait_for

__all__ = ["make_server"]  # the fixture, imported for pytest

PFYFILE = """\
task hold marker
  shell bash -c 'sleep 300; :' $marker & bash -c 'sleep 300; :' $marker; wait
end
"""

SLOW_CLANG = """#!/bin/bash
if [ "$1" = --version ]; then exec /usr/bin/clang-14 --version; fi
bash -c 'sleep 300; :' {marker}
exec /usr/bin/clang-14 "$@"
"""


def _wait(condition: object, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def slow_clang() -> Iterator[tuple[Path, str]]:
    """A clang that first sleeps with a marker; in a directory the sandbox's uid can read."""
    marker = f"pf-compile-{uuid.uuid4().hex}"
    folder = Path(tempfile.mkdtemp(prefix="pf-tool-"))
    folder.chmod(0o755)
    tool = folder / "clang"
    tool.write_text(SLOW_CLANG.format(marker=marker))
    tool.chmod(0o755)
    yield tool, marker
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def test_sigkill_of_the_server_ends_its_task_and_compile_processes(
    make_server: type[Server], tmp_path: Path, slow_clang: tuple[Path, str]
) -> None:
    tool, compile_marker = slow_clang
    task_marker = f"pf-task-{uuid.uuid4().hex}"
    server = make_server(
        tmp_path / "w",
        env={"PFY_FILE": "", "PF_CCACHE": "0", "PF_TOOL_CLANG": str(tool), "PF_JOBS": "2"},
    )
    (server.projects / "Pfyfile.pf").write_text(PFYFILE)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            response = http.post("/api/tasks/hold", json={"params": {"marker": task_marker}})
            assert response.status_code == 202, response.text
            wait_for(http, response.json()["buildId"], until=("running",))
            _wait(
                lambda: len(pids_with_word(task_marker)) == 2, "the task's processes never started"
            )
            post = {"language": "c", "files": {"slow.c": "int slow(void) { return 1; }\n"}}
            response = http.post("/api/compile", json=post)
            assert response.status_code in (200, 202), response.text
            _wait(lambda: pids_with_word(compile_marker), "the compile never started")
    finally:
        server.stop(signal.SIGKILL)
    # Within a few seconds: bwrap dies with the server, and the kernel ends each pid
    # namespace with it, grandchildren included.
    _wait(
        lambda: not pids_with_word(task_marker) and not pids_with_word(compile_marker),
        f"left running: {pids_with_word(task_marker) + pids_with_word(compile_marker)}",
        within=5.0,
    )
