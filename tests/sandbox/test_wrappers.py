"""The compile sandbox and the task lifetime wrapper, with the real bubblewrap."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pf.config import Settings, load_settings
from pf.errors import SandboxUnavailable
from pf.sandbox import (
    Completed,
    Confinement,
    Limits,
    compile_command,
    probe,
    reap_orphans,
    run,
    sandbox_uid,
    task_command,
    workspace,
)
from pf.sandbox.wrappers import OWNER_VARIABLE
from tests.conftest import pids_with_word
from tests.sandbox.conftest import FORK_BOMB

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
SECRET = b"pf-sandbox-secret-7f3a9c"


@pytest.fixture
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def scratch(settings: Settings) -> Iterator[Path]:
    with workspace(sandbox_uid(settings)) as path:
        yield path
        subprocess.run(["rm", "-rf", str(path)], check=True)


@pytest.fixture
def open_secret() -> Iterator[Path]:
    """A secret any user may read, outside every compile directory: only the sandbox
    keeps it out of reach, not its permissions."""
    folder = Path(tempfile.mkdtemp(prefix="pf-secret-"))
    folder.chmod(0o755)
    secret = folder / "secret.txt"
    secret.write_bytes(SECRET)
    secret.chmod(0o644)
    yield secret
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def confined(
    script: str,
    scratch: Path,
    settings: Settings,
    limits: Limits | None = None,
    readonly: tuple[Path, ...] = (),
) -> Completed:
    command = compile_command(
        ["/bin/bash", "-c", script],
        env=ENV,
        confinement=Confinement(scratch, readonly),
        settings=settings,
    )
    return run(
        command.argv,
        cwd=scratch,
        env=command.env,
        limits=limits or Limits(timeout=20.0),
        user=command.user,
    )


def test_the_probe_finds_a_working_bubblewrap(settings: Settings) -> None:
    assert settings.sandbox == "bwrap"
    assert probe(settings) is None


def test_a_confined_command_runs_in_the_scratch_dir_as_an_unprivileged_uid(
    scratch: Path, settings: Settings
) -> None:
    done = confined("id -u; id -g; pwd; echo made > out.txt", scratch, settings)
    assert done.ok, done.stderr
    uid, gid, cwd = done.stdout.split()
    assert uid != "0" and gid != "0"
    if os.geteuid() == 0:
        assert int(uid) == settings.sandbox_uid
    assert cwd == str(scratch)
    assert (scratch / "out.txt").read_text() == "made\n"


def test_only_the_system_and_the_scratch_dir_are_visible(
    scratch: Path, settings: Settings, open_secret: Path, tmp_path: Path
) -> None:
    hidden = [
        "/etc/passwd",
        "/root",
        "/home",
        str(open_secret),
        str(open_secret.parent),
        str(tmp_path),
        settings.cache_dir.resolve(),
        str(Path.cwd()),
    ]
    script = "; ".join(f"test -e {path} && echo VISIBLE {path}" for path in hidden)
    done = confined(f"{script}; ls /; cat {open_secret}; true", scratch, settings)
    assert done.ok, done.stderr
    assert "VISIBLE" not in done.stdout
    assert sorted(done.stdout.split()) == [
        "bin",
        "dev",
        "lib",
        "lib64",
        "proc",
        "sbin",
        "tmp",
        "usr",
    ]
    assert SECRET.decode() not in done.stdout + done.stderr


def test_there_is_no_network_not_even_loopback(scratch: Path, settings: Settings) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.5)
        port = listener.getsockname()[1]
        done = confined(
            f"echo hello > /dev/tcp/127.0.0.1/{port} && echo CONNECTED", scratch, settings
        )
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "CONNECTED" not in done.stdout
    assert not done.ok


def test_writes_outside_the_scratch_dir_fail_and_tmp_is_private(
    scratch: Path, settings: Settings
) -> None:
    marker = f"pf-private-{uuid.uuid4().hex}"
    done = confined(
        f"touch /usr/{marker} || echo usr-refused; touch /{marker} || echo root-refused; "
        f"echo x > /tmp/{marker} && echo tmp-ok",
        scratch,
        settings,
    )
    assert done.stdout.split() == ["usr-refused", "root-refused", "tmp-ok"]
    assert not Path(f"/usr/{marker}").exists()
    assert not Path(f"/tmp/{marker}").exists()


def test_cpu_memory_file_process_and_descriptor_limits_hold_inside(
    scratch: Path, settings: Settings
) -> None:
    limits = Limits(timeout=5.0, memory=2**30, file_size=2**20, processes=200, open_files=64)
    script = "ulimit -t; ulimit -v; ulimit -f; ulimit -u; ulimit -n; " + "; ".join(
        f"(ulimit -{flag} unlimited 2>/dev/null && echo raised-{flag})" for flag in "tvfun"
    )
    done = confined(script, scratch, settings, limits)
    # ulimit shows CPU seconds (4 x timeout + 1), KiB, KiB again and counts; no
    # confined process may raise them.
    assert done.stdout.split() == ["21", str(2**20), str(2**20 // 1024), "200", "64"]


def test_a_file_past_the_size_limit_is_refused(scratch: Path, settings: Settings) -> None:
    limits = Limits(timeout=10.0, file_size=2**20)
    done = confined("head -c 4194304 /dev/zero > big", scratch, settings, limits)
    assert not done.ok
    assert (scratch / "big").stat().st_size <= 2**20


def test_a_fork_bomb_is_stopped_by_the_process_limit(lone_settings: Settings) -> None:
    limits = Limits(timeout=10.0, processes=30)
    with workspace(sandbox_uid(lone_settings)) as scratch:
        done = confined(f"exec /usr/bin/python3 -c '{FORK_BOMB}'", scratch, lone_settings, limits)
        subprocess.run(["rm", "-rf", str(scratch)], check=True)
    forked, _, reason = done.stdout.strip().partition(" ")
    assert reason == "Resource temporarily unavailable", done
    assert 0 < int(forked) < 30


def _gone(marker: str, but: int = 0, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while pids_with_word(marker, but):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


PARENT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pf.config import load_settings
    from pf.sandbox import Confinement, Limits, compile_command, run

    settings = load_settings()
    scratch = Path(sys.argv[1])
    command = compile_command(
        ["/bin/bash", "-c", "bash -c 'sleep 300; :' " + sys.argv[2] + " & echo started; wait"],
        env={"PATH": "/usr/bin:/bin"},
        confinement=Confinement(scratch),
        settings=settings,
    )
    run(command.argv, cwd=scratch, env=command.env, limits=Limits(timeout=600.0),
        on_line=lambda stream, text: print(text, flush=True), user=command.user)
    """
)


def test_confined_processes_die_with_the_parent(scratch: Path) -> None:
    marker = f"pf-orphan-{uuid.uuid4().hex}"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(scratch), marker],
        stdout=subprocess.PIPE,
        env={**os.environ, "PF_SANDBOX": "bwrap"},
    )
    assert parent.stdout is not None
    try:
        assert parent.stdout.readline() == b"started\n"
        deadline = time.monotonic() + 10
        while not pids_with_word(marker, but=parent.pid):
            assert time.monotonic() < deadline, "the confined sleep never started"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()
        parent.stdout.close()
    assert _gone(marker, but=parent.pid)


def test_a_task_command_keeps_the_host_filesystem_and_gets_a_pid_namespace(
    tmp_path: Path, settings: Settings, open_secret: Path
) -> None:
    command = task_command(
        ["/bin/bash", "-c", f"echo $$; cat {open_secret}; echo; touch made; id -u"],
        cwd=tmp_path,
        env=ENV,
        settings=settings,
    )
    done = run(command.argv, cwd=tmp_path, env=command.env, limits=Limits(timeout=20.0))
    assert done.ok, done.stderr
    pid, content, uid = done.stdout.split()
    assert int(pid) < 10  # the first processes of a namespace of its own
    assert content == SECRET.decode()  # the operator's own command: the host's files
    assert (tmp_path / "made").exists()
    assert uid == str(os.geteuid())


def test_a_missing_program_is_reported_before_bwrap_runs(
    tmp_path: Path, settings: Settings
) -> None:
    from pf.errors import SandboxError

    with pytest.raises(SandboxError, match="cannot run no-such-tool-here"):
        task_command(["no-such-tool-here"], cwd=tmp_path, env=ENV, settings=settings)


def test_a_missing_bwrap_fails_closed_with_the_cause_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, scratch: Path
) -> None:
    monkeypatch.setenv("PF_TOOL_BWRAP", "/nonexistent/bwrap")
    settings = load_settings()
    failure = probe(settings)
    assert isinstance(failure, SandboxUnavailable)
    assert failure.http_status == 503
    assert "/nonexistent/bwrap" in failure.message
    assert "apt-get install bubblewrap" in (failure.hint or "")
    with pytest.raises(SandboxUnavailable):
        compile_command(["/bin/true"], env=ENV, confinement=Confinement(scratch), settings=settings)
    with pytest.raises(SandboxUnavailable):
        task_command(["/bin/true"], cwd=scratch, env=ENV, settings=settings)


def test_sandbox_off_runs_as_is_and_warns(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from pf.sandbox import warning

    monkeypatch.setenv("PF_SANDBOX", "off")
    settings = load_settings()
    assert probe(settings) is None
    assert "PF_SANDBOX=off" in (warning(settings) or "")
    command = compile_command(
        ["/bin/true"], env=ENV, confinement=Confinement(tmp_path), settings=settings
    )
    assert command.argv == ("/bin/true",)


def test_orphans_of_a_dead_owner_are_reaped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    marker = f"pf-reap-{uuid.uuid4().hex}"
    # An owner that cannot be running: no pid is that large.
    orphan = subprocess.Popen(
        ["/bin/bash", "-c", "sleep 300; :", marker],
        env={**ENV, OWNER_VARIABLE: "99999999:1"},
        start_new_session=True,
    )
    try:
        monkeypatch.setenv("PF_SANDBOX", "off")
        command = task_command(["/bin/true"], cwd=tmp_path, env=ENV, settings=load_settings())
        ours = subprocess.Popen(["/bin/bash", "-c", "sleep 300; :", marker], env=command.env)
        try:
            # Every pf serve or worker that starts meanwhile (other tests run them) reaps
            # this orphan as well: this call finds it unless one of them got there first.
            # (Run alone, the count must be 1; a reap that kills nothing times out here.)
            assert reap_orphans() >= 1 or orphan.wait(timeout=5) == -signal.SIGKILL
            assert orphan.wait(timeout=5) == -signal.SIGKILL
            assert ours.poll() is None  # this process is alive: its tasks stay
        finally:
            ours.kill()
            ours.wait()
    finally:
        orphan.kill()
        orphan.wait()
