"""A real ``pf serve`` process on loopback, in its own directory with its own SQLite file.

Each server gets a fresh work directory (a copy of the bundled demo projects, a web root,
``.pf/`` state), binds port 0 and reports the port it got in its JSON log, so tests run
in parallel (pytest -n auto) without ever sharing a port or a file.

The contract tests run in both modes (``MODES``): against one embedded server, and
against the shared deployment (``shared_api``: two API processes behind one port, two
pf workers, a private PostgreSQL database and a private Redis), started once per xdist
worker and shared by every module that asks for it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import pytest

from tests.pg import PgCluster
from tests.redisd import RedisServer

ROOT = Path(__file__).resolve().parents[2]
CLANG = "/usr/bin/clang-14"
DEMOS = ROOT / "demos"
START_TIMEOUT = 30.0


class Server:
    """One ``pf serve`` process; ``start()`` returns once /api/health answers. ``prefix``
    is a command that execs it (``prlimit --nofile=...``), so the pid stays pf's."""

    def __init__(
        self,
        workdir: Path,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        prefix: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.projects = workdir / "projects"
        self.web = workdir / "web"
        self.log_path = workdir / "server.log"
        self.extra_env = dict(env or {})
        self.args = args
        self.prefix = prefix
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        if not self.projects.exists():
            shutil.copytree(DEMOS, self.projects)
        self.web.mkdir(exist_ok=True)
        (self.web / "index.html").write_text("<!doctype html><title>pf demo</title>\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def shared(self) -> bool:
        """Whether this is a shared-mode API (builds run by pf worker processes)."""
        return "PF_DATABASE_URL" in self.extra_env

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PF_")}
        env["PF_CACHE_DIR"] = str(self.workdir / ".pf" / "cache")
        env.update(self.extra_env)
        return env

    def start(self) -> Server:
        with self.log_path.open("ab") as log:
            offset = log.tell()
            self.proc = subprocess.Popen(
                [
                    *self.prefix,
                    sys.executable,
                    "-m",
                    "pf",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--root",
                    str(self.web),
                    "--projects",
                    str(self.projects),
                    *self.args,
                ],
                cwd=self.workdir,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.port = self._wait_port(offset)
        self._wait_healthy()
        return self

    def log_lines(self, offset: int = 0) -> list[dict[str, object]]:
        lines = []
        with self.log_path.open("rb") as log:
            log.seek(offset)
            for raw in log:
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    lines.append({"raw": raw.decode(errors="replace")})
        return lines

    def _wait_port(self, offset: int) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for entry in self.log_lines(offset):
                if entry.get("message") == "pf serve listening":
                    return int(str(entry["port"]))
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"pf serve exited early:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        raise TimeoutError(f"pf serve did not start:\n{self.log_path.read_text()}")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"pf serve never became healthy:\n{self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[type[Server]]:
    """Factory for servers in this test's tmp_path; every one is stopped at the end."""
    started: list[Server] = []

    class _Server(Server):
        def start(self) -> Server:
            started.append(self)
            return super().start()

    yield _Server
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by a test module (start-up costs about a second)."""
    running = Server(tmp_path_factory.mktemp("serve")).start()
    yield running
    running.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


@pytest.fixture
def held_server(make_server: type[Server], tmp_path: Path) -> Server:
    """One build at a time, and every C compile holds for 30 s: builds stay queued or
    running for as long as a test needs them to."""
    wrapper = chatty_tool(tmp_path, "/usr/bin/clang-14", hold=30)
    return make_server(
        tmp_path / "work",
        env={
            "PF_JOBS": "1",
            "PF_CCACHE": "0",
            "PF_SHUTDOWN_GRACE": "1",
            "PF_TOOL_CLANG": str(wrapper),
            "PF_SANDBOX": "off",
        },
    ).start()


def wait_for(
    http: httpx.Client, build_id: str, timeout: float = 60.0, until: tuple[str, ...] = ()
) -> dict[str, object]:
    """Poll a build until it finishes (or reaches one of ``until``); returns its record."""
    done = until or ("completed", "failed", "cancelled")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record: dict[str, object] = http.get(f"/api/builds/{build_id}").json()
        if record["status"] in done:
            return record
        time.sleep(0.05)
    raise TimeoutError(f"build {build_id} did not reach {done}")


WORKER_START_TIMEOUT = 60.0


class Worker:
    """One ``pf worker`` process with a cache directory of its own."""

    def __init__(self, directory: Path, projects: Path, env: Mapping[str, str]) -> None:
        self.directory = directory
        self.projects = projects
        self.extra_env = dict(env)
        self.log_path = directory / "worker.log"
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    def start(self, concurrency: int = 1) -> Worker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PF_")}
        env["PF_CACHE_DIR"] = str(self.directory / "cache")
        env.update(self.extra_env)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "pf",
                    "worker",
                    "--projects",
                    str(self.projects),
                    "--concurrency",
                    str(concurrency),
                ],
                cwd=self.directory,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while b"pf worker ready" not in self.log_path.read_bytes():
            assert self.proc.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, self.log_path.read_text()
            time.sleep(0.05)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def download_artifacts(
    http: httpx.Client, records: list[dict[str, object]], into: Path
) -> dict[str, Path]:
    """Each build's one artifact, fetched over HTTP into ``into``: language -> its file."""
    files = {}
    for record in records:
        [artifact] = record["artifacts"]  # type: ignore[misc]
        fetched = http.get(artifact["url"])
        assert fetched.status_code == 200, fetched.text
        path = into / f"{record['language']}-{artifact['path']}"
        path.write_bytes(fetched.content)
        files[str(record["language"])] = path
    return files


def wait_ready(http: httpx.Client, want: bool, timeout: float = 30.0) -> dict[str, object]:
    """/api/ready's body once its answer is ``want`` (200 when ready, 503 when not): what
    it measures (disk, database) is re-read as the server goes, not at once."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get("/api/ready")
        body: dict[str, object] = answer.json()
        if body["ready"] is want:
            assert answer.status_code == (200 if want else 503)
            return body
        assert time.monotonic() < deadline, f"/api/ready never said ready={want}: {body}"
        time.sleep(0.1)


def noisy_server(make_server: type[Server], tmp_path: Path, send_queue: int) -> Server:
    """A server whose C compiles print about 4.5 MB of log lines each: more than the
    kernel buffers and uvicorn's write buffer hold for a WebSocket client that reads
    nothing. Events are batched every 5 ms; ``send_queue`` is PF_WS_SEND_QUEUE."""
    wrapper = chatty_tool(tmp_path, "/usr/bin/clang-14", lines=3000, width=500)
    return make_server(
        tmp_path / "w",
        env={
            "PF_TOOL_CLANG": str(wrapper),
            "PF_SANDBOX": "off",
            "PF_CCACHE": "0",
            "PF_WS_BATCH_MS": "5",
            "PF_WS_SEND_QUEUE": str(send_queue),
        },
    ).start()


def chatty_tool(
    directory: Path,
    real: str,
    *,
    lines: int = 0,
    delay: float = 0.0,
    hold: float = 0.0,
    pidfile: Path | None = None,
    width: int = 0,
) -> Path:
    """A compiler wrapper (pin it with PF_TOOL_<NAME>) that prints ``lines`` lines (padded
    by ``width`` dots), each after a ``delay`` seconds pause, optionally holds a child
    ``sleep`` for ``hold`` seconds (writing both pids to ``pidfile``), then execs the real
    tool. ``--version`` goes straight to the tool so probing still reads its version.

    The wrapper lives in the test's directory and writes there, which a confined compile
    can neither reach nor see: a server that pins one runs with ``PF_SANDBOX=off``."""
    script = directory / f"chatty-{Path(real).name}-{lines}-{hold}-{width}.sh"
    padding = "." * width
    record = f'echo "$$ $!" >> {pidfile}' if pidfile else ":"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$1" in --version|-v|-dumpversion) exec {real} "$@";; esac\n'
        f"i=0; while [ $i -lt {lines} ]; do {f'sleep {delay};' if delay else ''}"
        f' echo "progress line $i of a chatty compiler wrapper{padding}"; i=$((i+1)); done\n'
        + (f"sleep {hold} & {record}; wait\n" if hold else "")
        + f'exec {real} "$@"\n'
    )
    script.chmod(0o755)
    return script


def unique_c(tag: str = "") -> dict[str, str]:
    """A C source no earlier build has seen, so it always runs the compiler."""
    return {"main.c": f"/* {tag} {uuid.uuid4()} */\nint add(int a, int b) {{ return a + b; }}\n"}


MODES = ("embedded", "shared")

# The task both modes' servers offer (POST /api/tasks/greet): a task run is a build too.
CONTRACT_PFYFILE = 'task greet who="world"\n  shell echo "hello $who"\nend\n'

# What the modules sharing one deployment need of C compiles: four output lines a
# quarter second apart before the compiler runs (live log lines and progress to watch).
CHATTY = {"lines": 4, "delay": 0.25}


def chatty_env(directory: Path) -> dict[str, str]:
    """Settings whose C compiles print CHATTY lines: the wrapper lives in ``directory``,
    which a confined compile cannot see, so the sandbox is off."""
    wrapper = chatty_tool(directory, CLANG, **CHATTY)  # type: ignore[arg-type]
    return {
        "PF_TOOL_CLANG": str(wrapper),
        "PF_SANDBOX": "off",
        "PF_CCACHE": "0",
        "PF_SHUTDOWN_GRACE": "1",
    }


class Deployment:
    """The shared mode as a user runs it on one box: ``pf serve --workers 2`` and two
    ``pf worker`` processes on one PostgreSQL database and one Redis."""

    def __init__(self, workdir: Path, env: Mapping[str, str]) -> None:
        self.server = Server(workdir / "api", env=env, args=("--workers", "2"))
        self.workers = [Worker(workdir / f"worker{n}", self.server.projects, env) for n in range(2)]

    def start(self) -> Deployment:
        self.server.start()
        for worker in self.workers:
            worker.start()
        return self

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.server.stop()


@pytest.fixture(scope="session")
def shared_api(tmp_path_factory: pytest.TempPathFactory, pg_cluster: PgCluster) -> Iterator[Server]:
    """The shared deployment's API (its server's URL answers from either process), with
    a Redis of its own: tests that flush or restart the worker's Redis leave it alone."""
    work = tmp_path_factory.mktemp("shared-api")
    redis = RedisServer()
    deployment: Deployment | None = None
    try:
        redis.start()
        database = pg_cluster.create_database(f"pf_contract_{os.getpid()}")
        env = {
            "PF_DATABASE_URL": database,
            "PF_REDIS_URL": redis.url(),
            "PFY_FILE": "",  # the Pfyfile in the projects root, whatever the caller's is
            **chatty_env(work),
        }
        (work / "api").mkdir()
        deployment = Deployment(work, env)
        (deployment.server.projects / "Pfyfile.pf").write_text(CONTRACT_PFYFILE)
        deployment.start()
        yield deployment.server
    finally:
        if deployment is not None:
            deployment.stop()
        redis.destroy()


def server_in_mode(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, chatty: bool = False
) -> Iterator[Server]:
    """For a module-scoped fixture parametrized by MODES: a server of the module's own in
    the embedded mode (``chatty``: with the shared deployment's chatty C compiles), the
    session's shared deployment in the other."""
    if request.param == "shared":
        yield request.getfixturevalue("shared_api")
        return
    work = tmp_path_factory.mktemp("serve")
    env = {"PFY_FILE": "", **(chatty_env(work) if chatty else {})}
    running = Server(work / "server", env=env)
    (running.projects / "Pfyfile.pf").write_text(CONTRACT_PFYFILE)
    running.start()
    yield running
    running.stop()
