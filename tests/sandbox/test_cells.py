"""Sandbox cells, attacked: a job of one build must not reach the supervisor, outlive its
step, or leave anything a later build in the same cell could find. Real bubblewrap, real
pf-cell, real processes and signals."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from pf.config import Settings, load_settings
from pf.errors import SandboxError
from pf.sandbox import Completed, Limits, Space, confined
from pf.sandbox import cells as cells_module
from pf.sandbox.cells import Cell
from tests.conftest import pids_with_word
from tests.sandbox.conftest import FORK_BOMB
from tests.tools import needs_tool

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
LIMITS = Limits(timeout=20.0)

# Set-up builds pf-cell: under PF_STRICT_TOOLS its absence fails instead of skipping.
pytestmark = needs_tool(str(cells_module.PROGRAM))


@pytest.fixture
def settings() -> Settings:
    return load_settings()


def _scratch() -> Iterator[Path]:
    raise AssertionError("the sandbox is on: no unconfined scratch dir")


@contextmanager
def build(
    settings: Settings, readonly: tuple[Path, ...] = (), keep: tuple[str, ...] = ()
) -> Iterator[Space]:
    with confined(
        settings,
        readonly,
        scratch=contextmanager(_scratch),
        dispose=lambda path: shutil.rmtree(path, ignore_errors=True),
        keep=keep,
    ) as space:
        assert isinstance(space, Cell)
        yield space


def sh(space: Space, script: str, limits: Limits = LIMITS, **kwargs: object) -> Completed:
    return space.run(["/bin/bash", "-c", script], env=ENV, limits=limits, **kwargs)  # type: ignore[arg-type]


def py(space: Space, code: str, limits: Limits = LIMITS) -> Completed:
    return space.run(["/usr/bin/python3", "-c", textwrap.dedent(code)], env=ENV, limits=limits)


def test_steps_run_in_a_cell_as_in_a_one_shot_sandbox(settings: Settings) -> None:
    with build(settings) as space:
        first = sh(space, "echo $$; id -u; pwd; echo out; echo err >&2; echo made > f; exit 3")
        second = sh(space, "cat f")
    assert first.code == 3
    pid, uid, cwd, out = first.stdout.split()
    assert pid != "1" and cwd == str(space.path) and out == "out"
    if os.geteuid() == 0:
        assert int(uid) == settings.sandbox_uid
    assert first.stderr == "err\n"
    assert second.stdout == "made\n"  # steps of one build share the workspace


def test_a_cell_shows_nothing_of_pfs_installation(settings: Settings) -> None:
    with build(settings) as space:
        listed = sh(space, "ls -A /")
    top = cells_module.PROGRAM.parts[1]
    assert listed.ok and "pf-cell" in listed.stdout.split()
    if top not in ("usr", "tmp"):
        assert top not in listed.stdout.split(), listed.stdout


def test_a_job_cannot_kill_trace_or_read_the_supervisor(settings: Settings) -> None:
    attack = """
        import ctypes, os, signal
        libc = ctypes.CDLL(None, use_errno=True)
        os.kill(1, signal.SIGKILL)
        os.kill(1, signal.SIGSTOP)
        os.kill(1, signal.SIGTERM)
        print("ptrace", libc.ptrace(16, 1, 0, 0), ctypes.get_errno())
        for path in ("/proc/1/mem", "/proc/1/environ", "/proc/1/fd/3"):
            try:
                open(path, "rb").read(1)
                print("READ", path)
            except OSError as refused:
                print("refused", path, refused.errno)
        try:
            print("LISTED", os.listdir("/proc/1/fd"))
        except OSError:
            print("refused fd list")
        """
    with build(settings) as space:
        done = py(space, attack)
        after = sh(space, "echo next job runs")
    assert "READ" not in done.stdout and "LISTED" not in done.stdout, done.stdout
    assert "ptrace -1 1" in done.stdout  # EPERM
    assert done.stdout.count("refused") == 4
    assert after.stdout == "next job runs\n"


def test_a_background_process_dies_with_its_step(settings: Settings) -> None:
    marker = f"pf-cell-straggler-{uuid.uuid4().hex}"
    with build(settings) as space:
        left = sh(
            space,
            f"(setsid bash -c 'sleep 3; echo late > {space.path}/late; echo late > /tmp/late'"
            f" {marker} &) ; echo started",
        )
        assert left.stdout == "started\n"
        listed = py(
            space,
            """
            import os
            print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), os.getpid())
            """,
        )
    pids, own = listed.stdout.rsplit(" ", 1)
    assert pids == str(sorted({1, int(own)}))
    assert not pids_with_word(marker)


def test_nothing_a_build_wrote_survives_into_the_next(settings: Settings) -> None:
    plant = """
        set -u
        mkdir -p locked/deep && echo x > locked/deep/f && chmod 000 locked/deep locked
        echo x > /tmp/planted && mkdir /tmp/d && chmod 000 /tmp/d
        echo x > /dev/shm/planted
        mkfifo fifo && ln -s /etc/passwd link && ln -s / /tmp/root-link
        chmod 777 . /tmp
        echo x > /dev/planted 2>/dev/null && echo DEV-WRITABLE
        true
        """
    with build(settings) as space:
        root = space.root
        done = sh(space, plant)
    assert done.ok and "DEV-WRITABLE" not in done.stdout, done
    with build(settings) as space:
        assert space.root == root  # the same cell, reused
        seen = sh(space, "find . /tmp /dev/shm -mindepth 1; stat -c %a . /tmp /dev/shm; ls /dev")
    # When pf's directories lie under /tmp, bubblewrap made the directories above the
    # workspace in the cell's /tmp to mount it there: those alone are left.
    above = [p for p in space.path.parents if Path("/tmp") in p.parents]
    made = sorted(str(p) for p in (*above, space.path) if Path("/tmp") in p.parents)
    devices = "core fd full null ptmx pts random shm stderr stdin stdout tty urandom zero"
    assert seen.stdout.split() == [*made, "700", "700", "700", *devices.split()], seen.stdout


def test_kept_directories_stay_empty_with_pfs_mode_and_only_as_directories(
    settings: Settings,
) -> None:
    # obj/ and out/ are made by every build, so a cell keeps them; what a job does to
    # them must not reach the next build: their files go, their mode is pf's again, and
    # a link or file in their place is removed, never followed.
    keep = ("obj", "out", "gone")
    with build(settings, keep=keep) as space:
        root = space.root
        first = sh(space, "mkdir obj out && stat -c %i obj out")
        plant = """
            set -u
            echo x > obj/planted && mkdir -p obj/deep/er && chmod 000 obj/deep obj
            mv out /tmp/out-moved && ln -s /etc out
            mkdir gone && touch gone/f && mv gone /tmp/gone-moved && echo file > gone
            true
            """
        assert sh(space, plant).ok
    with build(settings, keep=keep) as space:
        assert space.root == root  # the same cell, reused
        seen = sh(space, "ls -A; stat -c '%n %a %i' obj; find obj -mindepth 1; ls -A /tmp")
    # The moved-away originals went with the rest of /tmp; bubblewrap's own stay.
    listed = [name for name in seen.stdout.split() if not name.startswith("pf-sandbox-")]
    assert seen.ok, seen
    kept_inode = first.stdout.split()[0]
    assert listed == ["obj", "obj", "755", kept_inode], seen.stdout


def test_a_workspace_moved_away_and_faked_retires_the_cell(settings: Settings) -> None:
    # Where pf's directories lie under /tmp, the directories bubblewrap made above the
    # workspace's mount point are in the cell's /tmp, the job's to rename: one moved
    # away, with a look-alike in its place, would show a later build the job's files
    # at the workspace's path.
    with build(settings) as space:
        top = next((p for p in space.path.parents if p.parent == Path("/tmp")), None)
        if top is None:
            pytest.skip("pf's directories are not under /tmp: nothing above the mount to move")
        root = space.root
        moved = sh(
            space,
            f"cd / && mv {top} /tmp/moved && mkdir -p {space.path} "
            f"&& echo planted > {space.path}/main.c && ls {space.path}",
        )
    assert moved.stdout == "main.c\n", moved
    with build(settings) as space:
        assert space.root != root
        seen = sh(space, "ls -A; ls -A /tmp/moved 2>&1 | head -1")
    assert "main.c" not in seen.stdout and "No such file" in seen.stdout, seen


def test_a_sysv_ipc_object_retires_the_cell(settings: Settings) -> None:
    segment = """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.shmget(0, 4096, 0o1000 | 0o600) >= 0)  # IPC_PRIVATE, IPC_CREAT
        """
    with build(settings) as space:
        root = space.root
        made = py(space, segment)
    assert made.stdout == "True\n"
    with build(settings) as space:
        assert space.root != root
        seen = sh(space, "tail -n +2 /proc/sysvipc/shm | wc -l")
    assert seen.stdout == "0\n"


def test_key_rings_and_message_queues_are_refused(settings: Settings) -> None:
    attack = """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        key = libc.syscall(248, b"user", b"pf-planted", b"secret", 6, -4)  # add_key to @u
        print("add_key", key, ctypes.get_errno())
        rt = ctypes.CDLL("librt.so.1", use_errno=True)
        queue = rt.mq_open(b"/pf-planted", os.O_CREAT | os.O_RDWR, 0o600, None)
        print("mq_open", queue, ctypes.get_errno())
        """
    with build(settings) as space:
        done = py(space, attack)
    assert "add_key -1 1" in done.stdout, done  # EPERM
    assert "mq_open -1" in done.stdout, done


def _supervisor(cell: Cell) -> int:
    """pf-cell's host pid: bwrap's only child."""
    assert cell._process is not None
    children = Path(f"/proc/{cell._process.pid}/task/{cell._process.pid}/children")
    (pid,) = children.read_text().split()
    return int(pid)


def test_a_cell_whose_bubblewrap_dies_fails_the_step_and_is_not_reused(
    settings: Settings,
) -> None:
    with build(settings) as space:
        root = space.root
        assert space._process is not None
        bwrap = space._process.pid
        timer = threading.Timer(0.3, os.kill, (bwrap, signal.SIGKILL))
        timer.start()
        with pytest.raises(SandboxError, match="sandbox cell"):
            sh(space, "sleep 30")
        timer.join()
    with build(settings) as space:
        assert space.root != root
        assert sh(space, "echo fine").stdout == "fine\n"


def test_a_silent_supervisor_is_killed_and_the_step_fails(settings: Settings) -> None:
    with build(settings) as space:
        root = space.root
        supervisor = _supervisor(space)
        started = sh(space, "echo warm")
        assert started.ok
        os.kill(supervisor, signal.SIGSTOP)
        with pytest.raises(SandboxError, match="did not stop"):
            sh(space, "sleep 30", limits=Limits(timeout=0.5))
    deadline = time.monotonic() + 5
    while Path(f"/proc/{supervisor}").exists() and not _zombie(supervisor):
        assert time.monotonic() < deadline, "pf-cell outlived its cell"
        time.sleep(0.02)
    with build(settings) as space:
        assert space.root != root


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_timeout_cancel_and_limits_hold_in_a_cell(settings: Settings) -> None:
    limits = Limits(timeout=5.0, memory=2**30, file_size=2**20, processes=200, open_files=64)
    with build(settings) as space:
        shown = sh(
            space, "ulimit -t; ulimit -v; ulimit -f; ulimit -u; ulimit -n; ulimit -c", limits
        )
        raised = sh(space, "ulimit -n 4096 && echo RAISED", limits)
        expired = sh(space, "echo before; sleep 30", Limits(timeout=0.5))
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        stopped = sh(space, "sleep 30", cancel=cancel)
        big = sh(space, "head -c 4194304 /dev/zero > big", Limits(timeout=10.0, file_size=2**20))
        size = (space.path / "big").stat().st_size
        after = sh(space, "echo still here")
    assert shown.stdout.split() == ["21", str(2**20), str(2**20 // 1024), "200", "64", "0"]
    assert "RAISED" not in raised.stdout
    assert expired.timed_out and expired.stdout == "before\n"
    assert stopped.cancelled and not stopped.ok
    assert not big.ok and size <= 2**20
    assert after.stdout == "still here\n"


def test_a_fork_bomb_is_stopped_in_a_cell(lone_settings: Settings) -> None:
    with build(lone_settings) as space:
        done = py(space, FORK_BOMB, Limits(timeout=10.0, processes=30))
        after = sh(space, "echo next")
    forked, _, reason = done.stdout.strip().partition(" ")
    assert reason == "Resource temporarily unavailable", done
    assert 0 < int(forked) < 30
    assert after.stdout == "next\n"


def test_output_past_the_cap_is_truncated_with_the_marker(settings: Settings) -> None:
    with build(settings) as space:
        done = sh(space, "for i in $(seq 1000); do echo line-$i; done", Limits(max_output=100))
    assert done.truncated and "[truncated:" in done.stdout


def test_a_cell_is_retired_after_its_jobs(settings: Settings) -> None:
    two = replace(settings, sandbox_cell_jobs=2)
    # Cells are kept per set of read-only paths: this set is the test's alone.
    readonly = (Path(sys.executable).parent,)
    with build(two, readonly) as space:
        root = space.root
        sh(space, "true")
    with build(two, readonly) as space:
        assert space.root == root
        sh(space, "true")
    with build(two, readonly) as space:
        assert space.root != root


CHILD = textwrap.dedent(
    """
    import sys, shutil
    from contextlib import contextmanager
    from pf.config import load_settings
    from pf.sandbox import Limits, confined

    with confined(load_settings(), (), scratch=None, dispose=shutil.rmtree) as space:
        space.run(["/bin/bash", "-c", "echo started; sleep 300; :", sys.argv[1]],
                  env={"PATH": "/usr/bin:/bin"}, limits=Limits(timeout=600.0),
                  on_line=lambda stream, text: print(text, flush=True))
    """
)


def test_cells_die_with_pf(tmp_path: Path) -> None:
    marker = f"pf-cell-orphan-{uuid.uuid4().hex}"
    parent = subprocess.Popen([sys.executable, "-c", CHILD, marker], stdout=subprocess.PIPE)
    assert parent.stdout is not None
    try:
        assert parent.stdout.readline() == b"started\n"
        assert pids_with_word(marker, but=parent.pid)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    deadline = time.monotonic() + 10
    while pids_with_word(marker, but=parent.pid):
        assert time.monotonic() < deadline, "the cell outlived pf"
        time.sleep(0.05)
