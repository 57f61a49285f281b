from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from pf.errors import SandboxError
from pf.sandbox import Limits, run, truncation_marker

ENV = {"PATH": os.defpath, "LC_ALL": "C.UTF-8"}


def test_lines_stream_in_order_to_the_sink(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    done = run(
        [sys.executable, "-c", "import sys\nfor i in range(3): print(i, flush=True)\nsys.exit(3)"],
        cwd=tmp_path,
        env=ENV,
        on_line=lambda stream, text: seen.append((stream, text)),
    )
    assert done.code == 3 and not done.ok
    assert seen == [("stdout", "0"), ("stdout", "1"), ("stdout", "2")]
    assert done.stdout == "0\n1\n2\n"


def test_environment_is_exactly_what_was_given(tmp_path: Path) -> None:
    done = run(["/usr/bin/env"], cwd=tmp_path, env={"ONLY": "this"})
    assert done.stdout.splitlines() == ["ONLY=this"]


def test_flooding_output_is_capped_with_a_visible_marker(tmp_path: Path) -> None:
    limits = Limits(max_output=10_000)
    flood = "import sys\nfor _ in range(200000): sys.stdout.write('y' * 99 + '\\n')"
    done = run([sys.executable, "-c", flood], cwd=tmp_path, env=ENV, limits=limits)
    assert done.code == 0 and done.truncated
    assert done.stdout.endswith(truncation_marker(10_000) + "\n")
    assert len(done.stdout) <= 10_000 + len(truncation_marker(10_000)) + 1


def _gone(pid: int) -> bool:
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as handle:
                if handle.read().split()[2] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_a_hanging_command_is_killed_with_its_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 & echo $! > {pidfile}; wait"
    started = time.monotonic()
    done = run(["/bin/bash", "-c", script], cwd=tmp_path, env=ENV, limits=Limits(timeout=0.5))
    assert done.timed_out and not done.ok
    assert time.monotonic() - started < 30
    assert _gone(int(pidfile.read_text()))


def test_a_grandchild_left_behind_after_exit_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    script = f"sleep 300 >/dev/null 2>&1 & echo $! > {pidfile}"
    done = run(["/bin/bash", "-c", script], cwd=tmp_path, env=ENV)
    assert done.ok
    assert _gone(int(pidfile.read_text()))


def test_memory_limit_stops_a_runaway_allocation(tmp_path: Path) -> None:
    grab = "b = bytearray(2 * 1024 ** 3); print('allocated')"
    done = run(
        [sys.executable, "-c", grab], cwd=tmp_path, env=ENV, limits=Limits(memory=512 * 1024**2)
    )
    assert done.code != 0
    assert "allocated" not in done.stdout
    assert "MemoryError" in done.stderr


def test_a_missing_program_is_a_sandbox_error(tmp_path: Path) -> None:
    with pytest.raises(SandboxError, match="cannot run /nonexistent/tool"):
        run(["/nonexistent/tool"], cwd=tmp_path, env=ENV)


def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    import threading

    pidfile = tmp_path / "child.pid"
    cancel = threading.Event()
    script = f"sleep 300 & echo $! > {pidfile}; echo started; wait"

    def cancel_when_started(stream: str, text: str) -> None:
        if text == "started":
            cancel.set()

    done = run(
        ["/bin/bash", "-c", script],
        cwd=tmp_path,
        env=ENV,
        limits=Limits(timeout=None),
        on_line=cancel_when_started,
        cancel=cancel,
    )
    assert done.cancelled and not done.ok and not done.timed_out
    assert _gone(int(pidfile.read_text()))
