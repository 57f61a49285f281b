"""Tasks on remote hosts over SSH: two real OpenSSH servers on loopback as two hosts."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pf.dsl import parse_file
from pf.tasks.executor import Executor, Reporter
from pf.tasks.params import Invocation
from tests.e2e.conftest import PF, Project
from tests.sshd import SSHD, Sshd, client_home, free_port, keygen
from tests.tools import needs_tool

pytestmark = needs_tool(SSHD, "ssh-keygen")


class Hosts:
    def __init__(self, a: Sshd, b: Sshd, home: Path) -> None:
        self.a = a
        self.b = b
        self.home = home

    @property
    def env(self) -> dict[str, str]:
        return {"HOME": str(self.home)}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosts]:
    root = tmp_path_factory.mktemp("sshd")
    client = keygen(root / "client_key")
    a = Sshd(root / "a", client)
    try:
        b = Sshd(root / "b", client)
        try:
            home = root / "home"
            client_home(home, root / "client_key", [a, b])
            yield Hosts(a, b, home)
        finally:
            b.stop()
    finally:
        a.stop()


# Each host says which one it is: the port its SSH connection came in on.
WHO = 'shell echo "$greeting from ${SSH_CONNECTION##* }"'


def test_a_task_runs_on_every_host_with_its_values(project: Project, hosts: Hosts) -> None:
    project.pfyfile(
        f"""
        hosts pair = {hosts.a.address}, {hosts.b.address}
        task hi greeting="hello"
          env SUFFIX=!
          {WHO}$SUFFIX
        end
        """
    )
    for how in (f"hosts={hosts.a.address},{hosts.b.address}", "env=pair"):
        ran = project.run("hi", how, "greeting=hi", env=hosts.env)
        assert ran.returncode == 0, ran.stderr
        assert sorted(ran.stdout.splitlines()) == sorted(
            [
                f"[{hosts.a.address}] hi from {hosts.a.port}!",
                f"[{hosts.b.address}] hi from {hosts.b.port}!",
            ]
        )
        assert f"pf: {hosts.a.address}: ok\n" in ran.stderr
        assert f"pf: {hosts.b.address}: ok\n" in ran.stderr


def test_host_user_and_port_make_one_address(project: Project, hosts: Hosts) -> None:
    project.pfyfile(f"task hi greeting=hey\n  {WHO}\nend\n")
    user = hosts.a.address.split("@")[0]
    ran = project.run("hi", "host=127.0.0.1", f"user={user}", f"port={hosts.b.port}", env=hosts.env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"[{hosts.b.address}] hey from {hosts.b.port}\n"


def test_a_failing_host_does_not_stop_the_other(project: Project, hosts: Hosts) -> None:
    project.pfyfile(
        f"""
        task deploy
          shell [ "${{SSH_CONNECTION##* }}" != "{hosts.b.port}" ] || exit 3
          shell echo "done on ${{SSH_CONNECTION##* }}"
        end
        """
    )
    ran = project.run("deploy", f"hosts={hosts.a.address},{hosts.b.address}", env=hosts.env)
    assert ran.returncode == 3
    assert ran.stdout == f"[{hosts.a.address}] done on {hosts.a.port}\n"
    assert f"pf: {hosts.a.address}: ok\n" in ran.stderr
    assert f"pf: {hosts.b.address}: failed: a command exited with code 3\n" in ran.stderr
    fast = project.run(
        "--fail-fast", "deploy", f"hosts={hosts.a.address},{hosts.b.address}", env=hosts.env
    )
    assert fast.returncode == 3
    assert f"pf: {hosts.b.address}: failed: a command exited with code 3\n" in fast.stderr


def test_an_unknown_host_key_is_refused_with_the_command_to_accept_it(
    project: Project, hosts: Hosts, tmp_path: Path
) -> None:
    project.pfyfile(f"task hi greeting=x\n  {WHO}\nend\n")
    home = tmp_path / "stranger"
    client_home(home, hosts.home / ".ssh" / "id_ed25519", [hosts.a])  # knows a, not b
    ran = project.run("hi", f"host={hosts.b.address}", env={"HOME": str(home)})
    assert ran.returncode == 1
    assert ran.stdout == ""
    lines = ran.stderr.splitlines()
    assert lines[1].startswith(
        f"error: {hosts.b.address}: the host key is not in ~/.ssh/known_hosts"
    )
    assert lines[2] == (
        f"hint: check the key, then accept it: ssh-keyscan -p {hosts.b.port} 127.0.0.1 "
        ">> ~/.ssh/known_hosts"
    )


def test_an_unreachable_host_is_one_line_naming_it(project: Project, hosts: Hosts) -> None:
    project.pfyfile(f"task hi greeting=x\n  {WHO}\nend\n")
    address = f"root@127.0.0.1:{free_port()}"  # taken, then let go: nothing listens
    ran = project.run("hi", f"hosts={hosts.a.address},{address}", env=hosts.env)
    assert ran.returncode == 1
    assert f"[{hosts.a.address}] x from {hosts.a.port}\n" == ran.stdout
    assert f"pf: {address}: failed: cannot connect: " in ran.stderr
    assert f"error: {address}: cannot connect: " in ran.stderr


def test_sync_goes_to_the_host_and_other_verbs_stay_here(
    project: Project, hosts: Hosts, tmp_path: Path
) -> None:
    target = tmp_path / "copied"
    project.write("site/index.html", "<h1>pf</h1>\n")
    project.pfyfile(
        f"""
        task publish
          sync src=site/ dest={target}
        end
        task build
          make all
        end
        """
    )
    ran = project.run("publish", f"host={hosts.a.address}", env=hosts.env)
    assert ran.returncode == 0, ran.stderr
    assert (target / "index.html").read_text() == "<h1>pf</h1>\n"
    refused = project.run("build", f"host={hosts.a.address}", env=hosts.env)
    assert refused.returncode == 2
    assert "error: `make` runs on this machine only, not on a remote host" in refused.stderr


def test_bad_host_lists_are_usage_errors(project: Project) -> None:
    project.pfyfile("task hi\n  shell echo hi\nend\n")
    assert project.run("hi", "hosts=@local").stdout == "hi\n"
    bad_port = project.run("hi", "hosts=h:http")
    assert bad_port.returncode == 2
    assert "error: h:http: `http` is not a port number" in bad_port.stderr
    mixed = project.run("hi", "hosts=@local,h")
    assert mixed.returncode == 2
    assert "a task runs either on this machine or on remote hosts, not both" in mixed.stderr


def test_a_remote_command_reads_no_input(project: Project, hosts: Hosts) -> None:
    # Its input is /dev/null, as a local command's is: it ends instead of waiting forever.
    project.pfyfile("task ask\n  shell read -r answer || echo no input\nend\n")
    ran = project.run("ask", f"host={hosts.a.address}", env=hosts.env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"[{hosts.a.address}] no input\n"


# A remote command that is killed must take what it started with it: bash (`; echo`
# keeps it from exec'ing) waits on a sleep whose argument, unique per test, is the
# marker pgrep finds both by.
def _slow(marker: str, before: str = "") -> str:
    return f"task slow\n  shell {before}echo started; sleep {marker}; echo never\nend\n"


def _marker() -> str:
    return f"{900 + secrets.randbelow(99)}.{secrets.randbelow(10**9):09d}"


def _running(marker: str) -> bool:
    return subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode == 0


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupting_pf_kills_the_remote_command(
    project: Project, hosts: Hosts, sig: signal.Signals
) -> None:
    marker = _marker()
    project.pfyfile(_slow(marker))
    pf = subprocess.Popen(
        [PF, "slow", f"host={hosts.a.address}"],
        cwd=project.root,
        env={**os.environ, **hosts.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert pf.stdout is not None
        assert pf.stdout.readline() == f"[{hosts.a.address}] started\n"
        _wait_until(lambda: _running(marker), "the remote sleep never started")
        pf.send_signal(sig)
        pf.wait(timeout=30)
        _wait_until(lambda: not _running(marker), f"the remote sleep outlived pf ({sig.name})")
        assert pf.returncode == 128 + sig
    finally:
        pf.kill()
        pf.communicate()
        subprocess.run(["pkill", "-f", f"sleep {marker}"], check=False)


@pytest.mark.parametrize(
    ("before", "killed_by"),
    [("", signal.SIGTERM), ("trap '' TERM; ", signal.SIGKILL)],
    ids=["TERM", "TERM-ignored"],
)
def test_cancelling_a_run_kills_its_remote_commands(
    tmp_path: Path,
    hosts: Hosts,
    monkeypatch: pytest.MonkeyPatch,
    before: str,
    killed_by: signal.Signals,
) -> None:
    # What pf serve's cancel of a task run does: set the executor's cancel Event.
    monkeypatch.setenv("HOME", str(hosts.home))
    marker = _marker()
    main = tmp_path / "Pfyfile.pf"
    main.write_text(_slow(marker, before))
    pfyfile = parse_file(main)
    cancel = threading.Event()
    lines: list[str] = []

    class Lines(Reporter):
        def line(self, task: str, stream: str, text: str) -> None:
            lines.append(text)

    executor = Executor(pfyfile, environ=dict(os.environ), reporter=Lines(), cancel=cancel)
    hosts_param = {"hosts": f"{hosts.a.address},{hosts.b.address}"}
    outcome: list[int] = []
    run = threading.Thread(
        target=lambda: outcome.append(
            executor.run([Invocation(pfyfile.tasks[None, "slow"], hosts_param)]).code
        )
    )
    run.start()
    try:
        _wait_until(lambda: lines.count("started") == 2, f"not started on both hosts: {lines}")
        _wait_until(lambda: _running(marker), "the remote sleeps never started")
        cancel.set()
        run.join(timeout=30)
        assert not run.is_alive()
        _wait_until(lambda: not _running(marker), "a remote sleep outlived the cancel")
        code = 128 + killed_by
        assert outcome == [code]
        assert "never" not in lines
        assert sum(f"failed: a command exited with code {code}" in line for line in lines) == 2
        assert not [line for line in lines if "Killed" in line or "Terminated" in line]
    finally:
        cancel.set()
        subprocess.run(["pkill", "-f", f"sleep {marker}"], check=False)
