from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pf.errors import SandboxError
from pf.sandbox import Limits, process, run, truncation_marker

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


@pytest.fixture(params=["prlimit", "preexec"])
def limiter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the limits are set: util-linux prlimit, or pf's own hook where it is absent."""
    import pf.sandbox.process as process

    if request.param == "prlimit":
        assert process._PRLIMIT is not None, "util-linux prlimit is installed on Debian"
    else:
        monkeypatch.setattr(process, "_PRLIMIT", None)
    return str(request.param)


def _limits_seen(text: str) -> dict[str, str]:
    # /proc/self/limits: "Max cpu time   <soft>   <hard>   <units>"
    seen = {}
    for line in text.splitlines()[1:]:
        name, soft = line[:26].strip(), line[26:47].strip()
        seen[name] = soft
    return seen


def test_the_limits_apply_to_the_command_itself(tmp_path: Path, limiter: str) -> None:
    limits = Limits(timeout=10, memory=1024**3, file_size=4096, processes=500)
    done = run(["/bin/cat", "/proc/self/limits"], cwd=tmp_path, env=ENV, limits=limits)
    assert done.ok, done.stderr
    seen = _limits_seen(done.stdout)
    assert seen["Max cpu time"] == "41"
    assert seen["Max address space"] == str(1024**3)
    assert seen["Max file size"] == "4096"
    assert seen["Max processes"] == "500"
    assert seen["Max core file size"] == "0"


def test_the_file_size_limit_stops_a_runaway_write(tmp_path: Path, limiter: str) -> None:
    done = run(
        ["/bin/dd", "if=/dev/zero", "of=big", "bs=1M", "count=8"],
        cwd=tmp_path,
        env=ENV,
        limits=Limits(file_size=1024**2),
    )
    assert done.code != 0
    assert (tmp_path / "big").stat().st_size <= 1024**2


def test_the_command_sees_its_own_argv_and_exit_code(tmp_path: Path, limiter: str) -> None:
    script = 'echo "$0" "$@"; exit 7'
    done = run(["/bin/bash", "-c", script, "name", "a b"], cwd=tmp_path, env=ENV)
    assert done.code == 7
    assert done.stdout == "name a b\n"
    assert done.argv == ("/bin/bash", "-c", script, "name", "a b")


@pytest.mark.parametrize(
    ("program", "reason"),
    [
        ("no-such-tool-here", "No such file or directory"),
        ("./missing", "No such file or directory"),
        ("./data.txt", "Permission denied"),
    ],
)
def test_a_program_that_cannot_run_is_a_sandbox_error(
    tmp_path: Path, limiter: str, program: str, reason: str
) -> None:
    (tmp_path / "data.txt").write_text("not a program")
    with pytest.raises(SandboxError, match=f"cannot run {program}: {reason}"):
        run([program], cwd=tmp_path, env=ENV)


def test_a_relative_program_is_found_from_the_working_directory(
    tmp_path: Path, limiter: str
) -> None:
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho ran\n")
    tool.chmod(0o755)
    done = run(["./tool.sh"], cwd=tmp_path, env=ENV)
    assert done.ok and done.stdout == "ran\n"


def test_long_lines_and_an_unterminated_last_line_arrive_whole(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    code = "import sys\nsys.stdout.write('x' * 200000 + '\\nlast')\nsys.stderr.write('e\\n')"
    done = run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=ENV,
        on_line=lambda stream, text: seen.append((stream, text)),
    )
    assert done.ok
    out = [text for stream, text in seen if stream == "stdout"]
    # A line longer than 64 KiB comes in 64 KiB pieces; nothing is lost or reordered.
    assert "".join(out) == "x" * 200000 + "last"
    assert out[-1] == "last" and all(len(piece) <= 64 * 1024 for piece in out)
    assert ("stderr", "e") in seen
    assert done.stdout == "x" * 200000 + "\nlast"


def test_a_grandchild_holding_the_pipes_does_not_hold_the_run(tmp_path: Path) -> None:
    # setsid puts the grandchild outside the group pf kills; it keeps stdout open.
    pidfile = tmp_path / "grandchild.pid"
    script = f"setsid sleep 30 & echo $! > {pidfile}; echo started"
    started = time.monotonic()
    try:
        done = run(["/bin/bash", "-c", script], cwd=tmp_path, env=ENV)
    finally:
        os.kill(int(pidfile.read_text()), 9)
    assert done.ok and done.stdout == "started\n"
    assert time.monotonic() - started < 20


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="dropping to another uid needs root")
LAUNCHERS = ["pf-confine", "prlimit+setpriv"]


@needs_root
def test_setup_built_the_one_exec_launcher() -> None:
    assert os.access(process._CONFINE, os.X_OK), "scripts/setup.sh builds .venv/bin/pf-confine"


@needs_root
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_user_runs_the_command_as_that_uid_with_no_groups_and_its_limits(
    launcher: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if launcher != "pf-confine":
        monkeypatch.setattr(process, "_CONFINE", tmp_path / "absent")
    script = "id -u; id -g; id -G; ulimit -n; ulimit -u; grep NoNewPrivs /proc/self/status"
    done = run(
        ["/bin/bash", "-c", script],
        cwd=Path("/"),
        env=ENV,
        limits=Limits(timeout=20.0, processes=77, open_files=33),
        user=65534,
    )
    assert done.ok, done.stderr
    assert done.stdout.split() == ["65534", "65534", "65534", "33", "77", "NoNewPrivs:", "1"]


@needs_root
@pytest.mark.parametrize(
    "argv",
    [
        ["--uid=0", "--", "/usr/bin/true"],
        ["--uid=65534", "--nofile=x", "--", "/usr/bin/true"],
        ["--uid=65534", "--stack=1", "--", "/usr/bin/true"],
        ["--nofile=1", "--", "/usr/bin/true"],
        ["--uid=65534", "--", "true"],
        ["--uid=65534"],
    ],
)
def test_the_launcher_runs_nothing_it_was_not_told_exactly(argv: list[str]) -> None:
    done = subprocess.run([process._CONFINE, *argv], capture_output=True, text=True, check=False)
    assert done.returncode == 126 and done.stderr.startswith("pf-confine: ")


# pf's SIGTERM handling as the command line sets it up, and a Popen that has pf signalled
# the moment its command has started, before pf knows the command: the widest the gap
# between the two can be, made every time; with a second thread, as pf often has.
SIGNALLED_AT_START = """
import os, signal, subprocess, sys, threading, time
from pathlib import Path
from pf.cli.run import _exit_on_sigterm
from pf.sandbox import Limits, process

class Signalled(subprocess.Popen):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        Path(sys.argv[2]).write_text(str(self.pid))
        os.kill(os.getpid(), signal.SIGTERM)

_exit_on_sigterm()
subprocess.Popen = Signalled
# Another thread, which a signal sent to the process may come to instead of this one.
threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
getattr(process, sys.argv[1])(
    ["/bin/sh", "-c", "trap '' TERM; echo started; exec sleep 60"],
    cwd=Path.cwd(), env={"PATH": "/usr/bin:/bin"}, limits=Limits(timeout=None),
)
"""


@pytest.mark.parametrize("way", ["run", "run_attached"])
def test_a_signal_that_ends_pf_as_its_command_starts_takes_the_command_along(
    tmp_path: Path, way: str
) -> None:
    started = tmp_path / "started.pid"
    script = tmp_path / "pf_like.py"
    script.write_text(SIGNALLED_AT_START)
    # Output to a file: a pipe left open by the command would hold this run until it ends.
    with (tmp_path / "stderr").open("wb") as stderr:
        done = subprocess.run(
            [sys.executable, str(script), way, str(started)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    assert done.returncode == 128 + 15, (tmp_path / "stderr").read_text()
    command = int(started.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{command}").exists() and _state(command) != "Z":
        assert time.monotonic() < deadline, "the command outlived pf"
        time.sleep(0.02)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "X"


# pf holds SIGINT and SIGTERM while a command starts; the command must not inherit that.
SIGNAL_MASK_OF_THE_COMMAND = """
import sys
from pathlib import Path
from pf.sandbox import Limits, process

argv = ["/bin/grep", "SigBlk", "/proc/self/status"]  # not a shell: dash clears its mask
options = {"cwd": Path.cwd(), "env": {"PATH": "/usr/bin:/bin"}}
if sys.argv[1] == "run":
    print(process.run(argv, **options).stdout, end="")
else:
    process.run_attached(argv, limits=Limits(timeout=None), **options)
"""


@pytest.mark.parametrize("way", ["run", "run_attached"])
def test_the_command_starts_with_no_signal_blocked(tmp_path: Path, way: str) -> None:
    script = tmp_path / "pf_like.py"
    script.write_text(SIGNAL_MASK_OF_THE_COMMAND)
    done = subprocess.run(
        [sys.executable, str(script), way], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SigBlk:", "0" * 16]
