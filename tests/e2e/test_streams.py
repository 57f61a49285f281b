"""Commands run on pf's own stdin, stdout and stderr, as make and just run them.

One task at a time, a command reads what is piped into pf, writes pf's output byte
for byte, and sees pf's terminal as its own: these tests drive the real ``pf`` through
pipes and through a pseudo-terminal, where Ctrl-C and Ctrl-Z are typed as a user would.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PF, Project

TASKS = """
task cat
  shell cat
end
task terminal
  shell test -t 0 && echo stdin-tty; test -t 1 && echo stdout-tty; read -r line; echo "got:$line"
end
task long
  shell head -c 3000000 /dev/zero | tr "\\0" x; echo; echo done
end
task unterminated
  shell printf "no newline at end"
end
task binary
  shell head -c 4096 /dev/urandom > random.bin && cat random.bin
end
task waits
  shell sleep 60 & echo $! > background.txt; echo waiting; wait
end
task daemon
  shell sleep 60 > /dev/null 2>&1 & echo $! > background.txt
end
task pauses
  shell echo napping; sleep 1; echo finished
end
task halts
  shell echo $$ > shell.txt; echo started; sleep 1; echo done
end
task script
  shell [lang:python] @show.py -- a "b c" d
end
task untagged
  shell @show.py -- x
end
"""


@pytest.fixture
def tasks(project: Project) -> Project:
    project.pfyfile(TASKS)
    project.write("show.py", "import sys\nprint(sys.argv[1:])\n")
    return project


def _state(pid: int) -> str:
    """The process's state letter (R, S, T, Z, ...), or X once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "X"


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaped yet counts as gone)."""
    return _state(pid) in ("Z", "X")


def _wait_gone(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


class Terminal:
    """``pf`` started as the session leader of a fresh pseudo-terminal, like a login shell's job."""

    def __init__(self, project: Project, *args: str) -> None:
        self.master, slave = pty.openpty()

        def controlling_terminal() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        env = {**os.environ, "NO_COLOR": "1"}
        self.proc = subprocess.Popen(
            [PF, *args],
            cwd=project.root,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=controlling_terminal,
        )
        os.close(slave)
        self.seen = b""

    def type(self, data: bytes) -> None:
        os.write(self.master, data)

    def read_until(self, needle: bytes, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # EIO: every process of the terminal has gone
                    break
                if not chunk:
                    break
                self.seen += chunk
        return self.seen

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal(tasks: Project) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def start(*args: str) -> Terminal:
        term = Terminal(tasks, *args)
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()


def test_piped_stdin_reaches_the_command(tasks: Project) -> None:
    done = subprocess.run([PF, "cat"], cwd=tasks.root, input=b"piped-data\n", capture_output=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"piped-data\n"


def test_output_passes_byte_for_byte(tasks: Project) -> None:
    long = subprocess.run([PF, "long"], cwd=tasks.root, capture_output=True)
    assert long.stdout == b"x" * 3_000_000 + b"\ndone\n"  # one line, not cut into pieces
    bare = subprocess.run([PF, "unterminated"], cwd=tasks.root, capture_output=True)
    assert bare.stdout == b"no newline at end"  # nothing added
    binary = subprocess.run([PF, "binary"], cwd=tasks.root, capture_output=True)
    assert binary.returncode == 0
    assert binary.stdout == (tasks.root / "random.bin").read_bytes()


def test_the_command_has_the_terminal(terminal: Callable[..., Terminal]) -> None:
    term = terminal("terminal")
    term.read_until(b"stdout-tty")
    term.type(b"typed line\n")
    seen = term.read_until(b"failed in")
    assert term.proc.wait(timeout=10) == 0
    assert b"stdin-tty" in seen
    assert b"stdout-tty" in seen
    assert b"got:typed line" in seen


def test_ctrl_c_stops_the_command_and_what_it_started(
    tasks: Project, terminal: Callable[..., Terminal]
) -> None:
    term = terminal("waits")
    term.read_until(b"waiting\r\n")
    background = int((tasks.root / "background.txt").read_text())
    term.type(b"\x03")
    assert term.proc.wait(timeout=10) == 130
    assert b"1 failed" in term.read_until(b"failed in")
    # A background job ignores SIGINT; it goes with the interrupted command all the same.
    assert _wait_gone(background)


def test_ctrl_z_stops_pf_with_the_command_until_continued(
    terminal: Callable[..., Terminal],
) -> None:
    term = terminal("pauses")
    term.read_until(b"napping\r\n")
    term.type(b"\x1a")
    _, status = os.waitpid(term.proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status)  # pf stopped too, so its shell gets the terminal back
    # Stopped, the command cannot finish its one-second nap, however long we wait
    # (`finished` shows once, in the echoed command, until it does).
    assert term.read_until(b"never printed", timeout=1.5).count(b"finished\r\n") == 1
    os.kill(term.proc.pid, signal.SIGCONT)  # what the shell's `fg` does
    assert term.read_until(b"failed in").count(b"finished\r\n") == 2
    assert term.proc.wait(timeout=10) == 0


def test_kill_stop_of_the_command_does_not_stop_pf(tasks: Project) -> None:
    with subprocess.Popen(
        [PF, "halts"], cwd=tasks.root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"started\n"
        shell = int((tasks.root / "shell.txt").read_text())
        os.kill(shell, signal.SIGSTOP)  # a debugger's stop, not the terminal's Ctrl-Z
        deadline = time.monotonic() + 10
        while _state(shell) != "T":  # stopped: pf has been sent its SIGCHLD
            assert time.monotonic() < deadline, "the shell never stopped"
            time.sleep(0.01)
        # Nothing to wait for here, only an absence to see: pf neither stops nor exits
        # in the time it would take to react to its child's stop.
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            assert os.waitpid(proc.pid, os.WNOHANG | os.WUNTRACED) == (0, 0)  # pf runs on
            time.sleep(0.01)
        os.kill(shell, signal.SIGCONT)
        assert proc.stdout.read() == b"done\n"
        assert proc.wait(timeout=10) == 0


def test_sigterm_to_pf_takes_the_command_down(tasks: Project) -> None:
    with subprocess.Popen(
        [PF, "waits"], cwd=tasks.root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"waiting\n"
        background = int((tasks.root / "background.txt").read_text())
        proc.terminate()
        assert proc.wait(timeout=10) == 128 + signal.SIGTERM
        assert _wait_gone(background)


def test_a_command_that_succeeds_may_leave_a_server_running(tasks: Project) -> None:
    done = tasks.run("daemon")
    assert done.returncode == 0, done.stderr
    background = int((tasks.root / "background.txt").read_text())
    try:
        assert not _gone(background)
    finally:
        os.kill(background, signal.SIGKILL)


def test_parallel_tasks_still_prefix_their_lines(tasks: Project) -> None:
    done = tasks.run("-j", "2", "unterminated", "script")
    assert done.returncode == 0, done.stderr
    assert "[unterminated] no newline at end" in done.stdout
    assert "[script] ['a', 'b c', 'd']" in done.stdout


def test_file_commands_are_echoed_as_written(tasks: Project) -> None:
    done = tasks.run("script", "untagged")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['a', 'b c', 'd']\n['x']\n"
    assert "$ [lang:python] @show.py -- a 'b c' d\n" in done.stderr
    assert "$ @show.py -- x\n" in done.stderr


def test_a_pfyfile_may_come_from_any_readable_file(tasks: Project) -> None:
    done = subprocess.run(
        [PF, "-f", "/dev/stdin", "hi"],
        cwd=tasks.root,
        input="task hi\n  shell echo hi from stdin\nend\n",
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi from stdin\n"
    folder = tasks.run("-f", str(tasks.root), "list")
    assert folder.returncode == 2
    assert f"Pfyfile `{tasks.root}` is a directory" in folder.stderr
