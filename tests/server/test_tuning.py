"""What pf serve asks of Linux as it starts: its open-file limit raised to the hard limit
(with a warning when that cannot hold PF_MAX_CONNECTIONS), the listen backlog from
PF_BACKLOG, and a warning when the kernel's somaxconn caps it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pf.server.tuning import RESERVE, SOMAXCONN
from tests.server.conftest import Server
from tests.tools import needs_tool


def _open_files(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit in /proc/{pid}/limits")


def _listen_backlog(port: int) -> int:
    """The backlog of the socket listening on ``port`` (ss shows it as Send-Q)."""
    out = subprocess.run(
        ["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[2])


def _warnings(server: Server, about: str) -> list[dict[str, object]]:
    return [
        line
        for line in server.log_lines()
        if line.get("level") == "warning" and about in str(line.get("message"))
    ]


@needs_tool("prlimit", "ss")
def test_open_files_raised_to_the_hard_limit_and_the_backlog_set(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(
        tmp_path / "low",
        env={"PF_BACKLOG": "77", "PF_MAX_CONNECTIONS": "4096"},
        prefix=("prlimit", "--nofile=256:1024", "--"),
    ).start()
    assert server.proc is not None
    assert _open_files(server.proc.pid) == (1024, 1024)
    [warning] = _warnings(server, "open-file limit")
    assert warning["open_files"] == 1024 and warning["needed"] == 4096 + RESERVE
    assert _listen_backlog(server.port) == 77
    assert not _warnings(server, "listen backlog")


@needs_tool("prlimit", "ss")
def test_a_backlog_above_somaxconn_is_warned_of(make_server: type[Server], tmp_path: Path) -> None:
    cap = int(SOMAXCONN.read_text())
    server = make_server(
        tmp_path / "high",
        env={"PF_BACKLOG": str(cap + 1), "PF_MAX_CONNECTIONS": "100"},
        prefix=("prlimit", f"--nofile=256:{100 + RESERVE}", "--"),
    ).start()
    [warning] = _warnings(server, "listen backlog")
    assert warning["backlog"] == cap + 1 and warning["somaxconn"] == cap
    assert _listen_backlog(server.port) == cap  # what the kernel keeps
    assert not _warnings(server, "open-file limit")  # exactly enough: no warning
