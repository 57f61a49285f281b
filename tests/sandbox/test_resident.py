"""Resident processes, misbehaving on purpose: real programs (a Python script whose every
request says what to do), real bubblewrap, real signals, checked through /proc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pf.config import Settings, load_settings
from pf.sandbox import ResidentReply, call_resident, reap_orphans, shutdown_residents
from tests.tools import needs_tool

PYTHON = "/usr/bin/python3"

# Answers each request by its first word; the reply starts with a token drawn at start,
# so a reply tells which process answered.
PROGRAM = r"""
import json, os, socket, struct, sys, time

TOKEN = os.urandom(8).hex().encode()
out = sys.stdout.buffer

def frame(data):
    return struct.pack(">I", len(data)) + data

def reply(data):
    out.write(frame(TOKEN + b" " + data))
    out.flush()

def attempt(action):
    try:
        action()
        return "done"
    except OSError as error:
        return type(error).__name__

def write(path):
    with open(path, "w") as handle:
        handle.write("x")

def connect():
    with socket.create_connection(("1.1.1.1", 53), timeout=2):
        pass

while True:
    head = sys.stdin.buffer.read(4)
    if len(head) < 4:
        sys.exit(0)
    body = sys.stdin.buffer.read(struct.unpack(">I", head)[0])
    verb, _, arg = body.partition(b" ")
    if verb == b"echo":
        reply(arg)
    elif verb == b"sleep":
        time.sleep(3600)
    elif verb == b"flood":
        reply(b"x" * int(arg))
    elif verb == b"garbage":
        out.write(b"garbage!" * 1000)
        out.flush()
        time.sleep(3600)
    elif verb == b"short":
        out.write(struct.pack(">I", 100) + b"abc")
        out.flush()
        sys.stderr.write("fatal: the payload was cursed\n")
        sys.exit(3)
    elif verb == b"die":
        sys.stderr.write("fatal: the payload was cursed\n")
        sys.exit(3)
    elif verb == b"chatter":
        for _ in range(200):
            sys.stderr.write("noise " * 1000 + "\n")
        reply(b"said")
    elif verb == b"extra":
        out.write(frame(TOKEN + b" first") + b"junk")
        out.flush()
    elif verb == b"fork":
        if os.fork() == 0:
            os.setsid()
            time.sleep(3600)
            os._exit(0)
        reply(b"forked")
    elif verb == b"await":
        while not os.path.exists(arg):
            time.sleep(0.01)
        reply(b"saw it")
    elif verb == b"probe":
        report = {
            "uid": os.getuid(),
            "tmp": attempt(lambda: write("/tmp/planted")),
            "root": attempt(lambda: write("/planted")),
            "beside": attempt(lambda: write(os.path.join(os.path.dirname(__file__), "planted"))),
            "shm": attempt(lambda: write("/dev/shm/planted")),
            "network": attempt(connect),
            "etc": sorted(os.listdir("/etc")) if os.path.isdir("/etc") else None,
        }
        reply(json.dumps(report).encode())
"""

# Set-up installs bubblewrap: under PF_STRICT_TOOLS its absence fails instead of skipping.
pytestmark = needs_tool("bwrap")


@dataclass
class Resident:
    """One test's resident program: its argv holds a marker no other test's has."""

    settings: Settings
    folder: Path
    marker: str

    @property
    def argv(self) -> list[str]:
        return [PYTHON, str(self.folder / "program.py"), self.marker]

    def call(self, payload: bytes, timeout: float = 30.0, **kwargs: object) -> ResidentReply:
        options = {"max_reply": 4 << 20, **kwargs}
        return call_resident(
            self.settings,
            self.argv,
            [self.folder],
            payload,
            timeout=timeout,
            **options,  # type: ignore[arg-type]
        )

    def token(self, reply: ResidentReply) -> bytes:
        assert reply.payload is not None, reply
        return reply.payload.split(b" ", 1)[0]

    def processes(self) -> list[int]:
        """The program's processes (not the bubblewrap around them), by the marker."""
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[0] == PYTHON.encode() and self.marker.encode() in argv:
                found.append(int(entry.name))
        return found


def _wait(condition: object, what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def _zombies() -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if state == "Z" and int(ppid) == os.getpid():
            found.append(int(entry.name))
    return found


@pytest.fixture(params=["bwrap", "off"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def resident(mode: str) -> Iterator[Resident]:
    # A directory the sandbox's uid can read (pytest's own may be private to root).
    folder = Path(tempfile.mkdtemp(prefix="pf-resident-"))
    folder.chmod(0o755)
    (folder / "program.py").write_text(PROGRAM)
    settings = replace(load_settings(), sandbox=mode, jobs=2, worker_concurrency=1)
    found = Resident(settings, folder, f"pf-resident-{uuid.uuid4().hex}")
    fds = len(os.listdir("/proc/self/fd"))
    yield found
    shutdown_residents()
    _wait(lambda: not found.processes(), "a resident process outlived shutdown")
    assert not _zombies()
    # No pipe or pidfd left open (fewer is fine: another test's may close meanwhile).
    assert len(os.listdir("/proc/self/fd")) <= fds
    shutil.rmtree(folder)


def test_a_process_answers_request_after_request(resident: Resident) -> None:
    first = resident.call(b"echo hello")
    # Larger than a pipe holds, and every byte value: the framing carries it whole.
    large = bytes(range(256)) * 4096
    second = resident.call(b"echo " + large)
    assert first.payload is not None and first.payload.endswith(b" hello")
    assert second.payload is not None and second.payload.endswith(b" " + large)
    assert resident.token(first) == resident.token(second)  # one process, reused
    assert len(resident.processes()) == 1


def test_a_request_that_times_out_kills_its_process(resident: Resident) -> None:
    before = resident.token(resident.call(b"echo warm"))
    slow = resident.call(b"sleep", timeout=0.5)
    assert slow.timed_out and slow.payload is None and slow.failure is None
    after = resident.call(b"echo again")
    assert resident.token(after) != before
    assert len(resident.processes()) == 1


def test_a_cancelled_request_kills_its_process(resident: Resident) -> None:
    before = resident.token(resident.call(b"echo warm"))
    cancel = threading.Event()
    # Whenever it lands, before or during the request, the request ends cancelled.
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    stopped = resident.call(b"sleep", cancel=cancel)
    timer.join()
    assert stopped.cancelled and stopped.payload is None
    assert resident.token(resident.call(b"echo again")) != before


def test_a_reply_over_the_limit_kills_the_process(resident: Resident) -> None:
    before = resident.token(resident.call(b"echo warm"))
    flood = resident.call(b"flood 100000", max_reply=1000)
    assert flood.payload is None and flood.failure is not None
    assert "over the limit of 1000" in flood.failure
    assert resident.token(resident.call(b"echo again")) != before


def test_garbage_instead_of_a_frame_kills_the_process(resident: Resident) -> None:
    before = resident.token(resident.call(b"echo warm"))
    garbage = resident.call(b"garbage")
    assert garbage.failure is not None and "over the limit" in garbage.failure
    assert resident.token(resident.call(b"echo again")) != before


def test_output_between_requests_retires_the_process(resident: Resident) -> None:
    first = resident.call(b"extra")
    assert first.payload is not None and first.payload.endswith(b" first")
    # The junk after the frame would be read as the next reply: a new process answers.
    assert resident.token(resident.call(b"echo again")) != resident.token(first)


@pytest.mark.parametrize("verb", [b"die", b"short"])
def test_a_death_mid_request_fails_with_its_status_and_last_words(
    resident: Resident, verb: bytes
) -> None:
    before = resident.token(resident.call(b"echo warm"))
    died = resident.call(verb)
    assert died.payload is None and not died.timed_out
    assert died.failure is not None
    assert "exited with code 3" in died.failure
    assert "fatal: the payload was cursed" in died.failure
    assert resident.token(resident.call(b"echo again")) != before


def test_a_flood_on_stderr_is_drained_and_kept_short(resident: Resident) -> None:
    said = resident.call(b"chatter")
    assert said.payload is not None and said.payload.endswith(b" said")
    died = resident.call(b"die")
    assert died.failure is not None and len(died.failure) < 2000
    assert died.failure.endswith("fatal: the payload was cursed")


def test_a_child_left_running_dies_with_the_process(resident: Resident) -> None:
    forked = resident.call(b"fork")
    assert forked.payload is not None
    _wait(lambda: len(resident.processes()) == 2, "the forked child")
    # The fixture's shutdown must end the detached child too.


def test_the_cap_holds_with_more_callers_than_processes(resident: Resident) -> None:
    # jobs=2, worker_concurrency=1: at most two processes at once; three callers.
    flag = resident.folder / "go"
    replies: list[ResidentReply] = []
    callers = [
        threading.Thread(target=lambda: replies.append(resident.call(b"await " + bytes(flag))))
        for _ in range(3)
    ]
    for caller in callers:
        caller.start()
    _wait(lambda: len(resident.processes()) == 2, "two processes busy")
    assert len(resident.processes()) == 2
    flag.write_text("go")
    for caller in callers:
        caller.join()
    assert [r.payload is not None for r in replies] == [True] * 3
    # Three replies from two processes: the third caller waited for one to come free.
    assert len({resident.token(r) for r in replies}) == 2


def test_a_process_is_retired_after_sandbox_cell_jobs_requests(resident: Resident) -> None:
    resident.settings = replace(resident.settings, sandbox_cell_jobs=2)
    tokens = [resident.token(resident.call(b"echo %d" % i)) for i in range(5)]
    assert tokens[0] == tokens[1] != tokens[2] == tokens[3] != tokens[4]
    resident.settings = replace(resident.settings, sandbox_cell_jobs=0)
    fresh = [resident.token(resident.call(b"echo once")) for _ in range(2)]
    assert fresh[0] != fresh[1]


def test_a_successor_is_up_before_the_last_request_and_waits_its_turn(
    resident: Resident,
) -> None:
    # Four requests a process: its successor starts once one is left, that is as the
    # third returns (in the background, so it may be up by the time the call is back).
    resident.settings = replace(resident.settings, sandbox_cell_jobs=4)
    tokens = [resident.token(resident.call(b"echo %d" % i)) for i in range(2)]
    assert len(resident.processes()) == 1
    tokens.append(resident.token(resident.call(b"echo 2")))
    assert len(set(tokens)) == 1
    _wait(lambda: len(resident.processes()) == 2, "the successor, started with no request")
    # The old process answers its last request, then goes; the successor, up before
    # the next request came, answers it: that request started nothing.
    assert resident.token(resident.call(b"echo 3")) == tokens[0]
    _wait(lambda: len(resident.processes()) == 1, "the old process's end")
    waiting = resident.processes()
    successor = resident.token(resident.call(b"echo 4"))
    assert successor != tokens[0] and resident.processes() == waiting


@pytest.mark.parametrize("mode", ["bwrap"])  # PF_SANDBOX=off confines nothing
def test_a_resident_is_confined_like_a_compile_step(resident: Resident) -> None:
    reply = resident.call(b"probe")
    assert reply.payload is not None
    report = json.loads(reply.payload.split(b" ", 1)[1])
    assert "done" not in (report["tmp"], report["root"], report["beside"], report["shm"])
    assert report["network"] != "done"
    assert report["etc"] is None  # no /etc at all, as in a compile step
    if os.geteuid() == 0:
        assert report["uid"] == resident.settings.sandbox_uid
        (pid,) = resident.processes()
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uids.split()[1:] == [str(resident.settings.sandbox_uid)] * 4


def test_a_program_that_cannot_start_fails_with_its_cause(resident: Resident) -> None:
    missing = resident.folder / "absent"
    reply = call_resident(
        resident.settings, [str(missing)], [resident.folder], b"", timeout=30.0, max_reply=100
    )
    assert reply.failure is not None and str(missing) in reply.failure


# Starts a resident, then kills its own process with SIGKILL: no shutdown runs.
KILLED_PF = """
import os, signal, sys
from dataclasses import replace
from pathlib import Path
from pf.config import load_settings
from pf.sandbox import call_resident
settings = replace(load_settings(), sandbox=sys.argv[1])
folder = Path(sys.argv[2])
argv = ["/usr/bin/python3", str(folder / "program.py"), sys.argv[3]]
reply = call_resident(settings, argv, [folder], b"fork", timeout=30.0, max_reply=100)
assert reply.payload is not None, reply
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_residents_die_with_a_killed_pf(resident: Resident, mode: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", KILLED_PF, mode, str(resident.folder), resident.marker],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == -9, done.stderr
    if mode == "off":
        # No namespace dies with it: the child that left its session outlives the dead
        # pf until the next one starts and kills what carries a dead owner's marker.
        reap_orphans()
    _wait(lambda: not resident.processes(), "a resident outlived the pf that started it")
