"""What the pf serve benchmarks share: servers in temp dirs, wrk, a raw HTTP client, WS clients.

Everything here runs on loopback and cleans up after itself: every process a helper
starts is stopped by the same helper (context managers), every file lives in a
temporary directory. Used by server_bench.py (``make bench``) and server_load.py.

  PfServer        ``pf serve --port 0`` in a temp dir with its own PF_CACHE_DIR and SQLite
                  file; its port is read from the JSON "listening" log line, its RSS from
                  /proc/<pid>/status
  node_hello      a bare Node.js ``http`` hello server (the runtime ceiling)
  nginx_static    nginx serving a directory (the static-file baseline)
  wrk             runs /usr/bin/wrk and parses req/s, latency percentiles and errors
  Client          a minimal keep-alive HTTP/1.1 client on asyncio: far cheaper per
                  request than httpx, so one Python process can drive thousands of req/s
  ws_worker       a process holding many WebSocket clients that timestamps every event
                  on receipt (one process decoding 1,000 copies of each message would
                  itself be the bottleneck, so the clients are spread over several)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ROOT / "demos"
PF = str(Path(sys.executable).with_name("pf"))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
MiB = 1024 * 1024


# Small helpers ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; nan for no samples."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB (10^6 bytes, as targets are written)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wat_source(n: int) -> str:
    """A tiny WAT module, distinct for every ``n`` (so its compile is never a cache hit)."""
    return (
        f';; bench module {n}\n(module\n  (func (export "value") (result i32)\n'
        f"    i32.const {n & 0x7FFFFFFF})\n"
        '  (func (export "add") (param i32 i32) (result i32)\n'
        "    local.get 0\n    local.get 1\n    i32.add))\n"
    )


def compile_body(n: int) -> bytes:
    """A POST /api/compile body for wat_source(n)."""
    body = {"language": "wat", "target": "wasm", "files": {"bench.wat": wat_source(n)}}
    return json.dumps(body, separators=(",", ":")).encode()


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on port {port}")


# pf serve ------------------------------------------------------------------------------


class PfServer:
    """One ``pf serve`` in its own temp dir (cache, SQLite file, web root, projects).

    ``env`` adds PF_* settings; the caller's PF_* variables are never inherited. Use as
    a context manager: the server is stopped (SIGTERM, then SIGKILL after 30 s) and
    its directory removed on exit, whatever happened.
    """

    def __init__(self, env: Mapping[str, str] | None = None, name: str = "pf") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"pf-bench-{name}-"))
        self.web = self.dir / "web"
        self.web.mkdir()
        (self.web / "index.html").write_text("<!doctype html><title>pf bench</title>\n")
        self.projects = self.dir / "projects"
        shutil.copytree(DEMOS, self.projects)
        self.log_path = self.dir / "server.log"
        self.extra_env = dict(env or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def env(self) -> dict[str, str]:
        """The server's environment; ``pf`` commands run with it reach its database."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PF")}
        env["PF_CACHE_DIR"] = str(self.dir / ".pf" / "cache")
        env["PF_DATABASE_URL"] = f"sqlite:///{self.dir / 'pf.db'}"
        env["PF_LOG_LEVEL"] = "info"  # the "listening" line carries the port
        # A benchmark is one client sending thousands of submissions a second: the
        # per-client rate limit would measure itself.
        env["PF_RATE_LIMIT"] = "0"
        env.update(self.extra_env)
        return env

    def pf(self, *args: str) -> str:
        """Run ``pf ARGS`` against this server's database; returns its stdout."""
        done = subprocess.run(
            [PF, *args], cwd=self.dir, env=self.env(), capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def start(self) -> PfServer:
        env = self.env()
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    *(PF, "serve", "--host", "127.0.0.1", "--port", "0"),
                    *("--root", str(self.web), "--projects", str(self.projects)),
                ],
                cwd=self.dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self.port = self._wait_port()
        _wait_listening(self.port, self.proc, "pf serve")
        return self

    def _wait_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        assert self.proc is not None
        while time.monotonic() < deadline:
            for raw in self.log_path.read_bytes().splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(raw)
                    if entry.get("message") == "pf serve listening":
                        return int(entry["port"])
            if self.proc.poll() is not None:
                raise RuntimeError(f"pf serve exited early:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        raise TimeoutError(f"pf serve did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def __enter__(self) -> PfServer:
        try:
            return self.start()
        except BaseException:
            self.__exit__()
            raise

    def __exit__(self, *_: object) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# Baselines -----------------------------------------------------------------------------

NODE_HELLO = """\
const http = require('http');
const server = http.createServer((req, res) => {
  res.writeHead(200, {'Content-Type': 'text/plain'});
  res.end('Hello World\\n');
});
server.listen(Number(process.argv[2]), '127.0.0.1');
"""


@contextlib.contextmanager
def node_hello() -> Iterator[str]:
    """A bare Node.js ``http`` hello server; yields its base URL."""
    scratch = Path(tempfile.mkdtemp(prefix="pf-bench-node-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        script = scratch / "hello.js"
        script.write_text(NODE_HELLO)
        port = free_port()
        proc = subprocess.Popen(
            ["node", str(script), str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        _wait_listening(port, proc, "node hello server")
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc is not None:
            _stop(proc)
        shutil.rmtree(scratch, ignore_errors=True)


NGINX_CONF = """\
worker_processes {workers};
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
  types {{ application/wasm wasm; text/html html; }}
  default_type application/octet-stream;
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {root};
  }}
}}
"""


@contextlib.contextmanager
def nginx_static(root: Path, workers: str = "auto") -> Iterator[str]:
    """nginx (``workers`` worker processes, sendfile) serving ``root``; yields its base URL."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    scratch = Path(tempfile.mkdtemp(prefix="pf-bench-nginx-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        port = free_port()
        conf = scratch / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""  # workers must read the temp dir
        conf.write_text(
            NGINX_CONF.format(tmp=scratch, port=port, root=root, user=user, workers=workers)
        )
        proc = subprocess.Popen(
            [nginx, "-p", str(scratch), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        _wait_listening(port, proc, "nginx")
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc is not None:
            _stop(proc, signal.SIGQUIT)  # graceful: the master stops its workers
        shutil.rmtree(scratch, ignore_errors=True)


# wrk -----------------------------------------------------------------------------------

WRK = shutil.which("wrk") or "/usr/bin/wrk"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class WrkResult:
    rps: float
    latency_ms: dict[int, float]  # 50, 75, 90, 99
    requests: int
    non_2xx: int
    socket_errors: int
    seconds: float
    output: str

    @property
    def ok_rps(self) -> float:
        """Rate of 2xx/3xx answers only."""
        return (self.requests - self.non_2xx) / self.seconds if self.seconds else 0.0


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unreadable wrk duration {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def wrk(
    url: str,
    *,
    seconds: int = 5,
    threads: int = 2,
    connections: int = 64,
    headers: Mapping[str, str] | None = None,
    script: Path | None = None,
) -> WrkResult:
    """Run wrk --latency against ``url`` and parse its report."""
    argv = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, seconds)}s",
        "--timeout",
        "5s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    latency = {int(p): _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M)}
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if total is None or rps is None:
        raise RuntimeError(f"unreadable wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(rps[1]),
        latency_ms=latency,
        requests=int(total[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        seconds=_ms(f"{total[2]}{total[3]}") / 1000,
        output=out,
    )


# A minimal keep-alive HTTP/1.1 client ---------------------------------------------------


def request_bytes(
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One keep-alive HTTP/1.1 connection; a request at a time (no pipelining)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, raw: bytes) -> Answer:
        """Send one request; a kept-alive connection the server had closed is reopened
        once (it closed it while idle, so the request never reached it)."""
        fresh = self.writer is None
        if fresh:
            await self._open()
        try:
            return await self._exchange(raw)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close()
            if fresh:
                raise
            await self._open()
            return await self._exchange(raw)

    async def _exchange(self, raw: bytes) -> Answer:
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await self._chunked()
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Answer(status, headers, body)

    async def _chunked(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)


@dataclass
class Outcome:
    """What a run of requests got back."""

    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, of every answer
    errors: Counter[str] = field(default_factory=Counter)  # transport failures, by kind
    seconds: float = 0.0
    answers: list[Answer] = field(default_factory=list)  # kept only when asked

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 400)


async def closed_loop(
    host: str,
    port: int,
    make: Callable[[int], bytes],
    *,
    total: int,
    connections: int = 32,
    keep: bool = False,
) -> Outcome:
    """Send ``total`` requests (``make(i)`` for i = 0..total-1) over ``connections``
    keep-alive connections, each sending its next request when the last is answered."""
    outcome = Outcome()
    counter = iter(range(total))
    loop = asyncio.get_running_loop()

    async def one_connection() -> None:
        conn = Connection(host, port)
        try:
            for index in counter:
                started = loop.time()
                try:
                    answer = await conn.send(make(index))
                except (OSError, asyncio.IncompleteReadError) as exc:
                    outcome.errors[type(exc).__name__] += 1
                    conn.close()
                    continue
                outcome.latencies.append(loop.time() - started)
                outcome.statuses[answer.status] += 1
                if keep:
                    outcome.answers.append(answer)
        finally:
            conn.close()

    started = loop.time()
    await asyncio.gather(*(one_connection() for _ in range(min(connections, total))))
    outcome.seconds = loop.time() - started
    return outcome


async def fetch(url_base: str, method: str, path: str, body: bytes | None = None) -> Answer:
    """One request on a fresh connection."""
    host, port = _host_port(url_base)
    conn = Connection(host, port)
    try:
        return await conn.send(request_bytes(method, path, body, {"Connection": "close"}))
    finally:
        conn.close()


def _host_port(url_base: str) -> tuple[str, int]:
    match = re.fullmatch(r"https?://([^:/]+):(\d+)/?", url_base)
    if match is None:
        raise ValueError(f"expected http://HOST:PORT, got {url_base!r}")
    return match[1], int(match[2])


def get_json(url_base: str, path: str) -> Any:
    answer = asyncio.run(fetch(url_base, "GET", path))
    return json.loads(answer.body)


def wait_idle(url_base: str, timeout: float = 120.0) -> dict[str, Any]:
    """Poll /api/metrics until no build is queued or running; returns the last metrics."""
    deadline = time.monotonic() + timeout
    while True:
        metrics: dict[str, Any] = get_json(url_base, "/api/metrics")
        if metrics["queuedBuilds"] == 0 and metrics["activeBuilds"] == 0:
            return metrics
        if time.monotonic() > deadline:
            raise TimeoutError(f"builds still pending after {timeout} s: {metrics}")
        time.sleep(0.1)


# WebSocket clients --------------------------------------------------------------------------

TERMINAL = frozenset({"build_completed", "build_failed", "build_cancelled"})
# Per client: buildId -> [(event type, CLOCK_MONOTONIC seconds at receipt), ...]
ClientEvents = dict[str, list[tuple[str, float]]]

NODE_CLIENTS = """\
// pf bench: COUNT WebSocket clients on URL; each event is timestamped on receipt with
// CLOCK_MONOTONIC (process.hrtime, the clock of Python's time.monotonic on Linux).
// stdout: {"connected": n, "failed": m} once all have their initial_status; then, after
// a line {"ids": [...], "timeout": s} on stdin, {"events": [per client {id: [[type, t]]}],
// "batches": number of batch messages received}.
const WebSocket = require('ws');
const [url, countText] = process.argv.slice(2);
const count = Number(countText);
const seen = Array.from({length: count}, () => new Map());
const sockets = [];
const TERMINAL = new Set(['build_completed', 'build_failed', 'build_cancelled']);
const now = () => Number(process.hrtime.bigint()) / 1e9;
let ready = 0, failed = 0, inflight = 0, next = 0, batches = 0;

function settle() {
  inflight--;
  pump();
  if (ready + failed === count) {
    process.stdout.write(JSON.stringify({connected: ready, failed}) + '\\n');
  }
}
function open(index) {
  const ws = new WebSocket(url, {maxPayload: 16 * 1024 * 1024});
  sockets.push(ws);
  let settled = false;
  ws.on('message', (data) => {
    const t = now();
    const message = JSON.parse(data);
    const updates = message.type === 'batch' ? message.updates : [message];
    if (message.type === 'batch') batches++;
    for (const update of updates) {
      if (update.buildId === undefined) continue;
      let list = seen[index].get(update.buildId);
      if (!list) seen[index].set(update.buildId, (list = []));
      list.push([update.type, t]);
    }
    if (message.type === 'initial_status' && !settled) { settled = true; ready++; settle(); }
  });
  ws.on('error', () => {});
  ws.on('close', () => { if (!settled) { settled = true; failed++; settle(); } });
}
function pump() {
  while (inflight < 32 && next < count) { inflight++; open(next++); }
}
pump();

let input = '';
process.stdin.on('data', (chunk) => {
  input += chunk;
  if (!input.includes('\\n')) return;
  const {ids, timeout} = JSON.parse(input);
  const deadline = now() + timeout;
  const done = () => seen.every((events) => ids.every(
    (id) => (events.get(id) || []).some(([type]) => TERMINAL.has(type))));
  const check = () => {
    if (!done() && now() < deadline) return setTimeout(check, 50);
    setTimeout(() => {
      const report = seen.map(
        (events) => Object.fromEntries(ids.map((id) => [id, events.get(id) || []])));
      process.stdout.write(JSON.stringify({events: report, batches}) + '\\n', () => {
        for (const ws of sockets) ws.terminate();
        process.exit(0);
      });
    }, 300);  // anything sent after the terminal event would show up too
  };
  check();
});
"""


@contextlib.contextmanager
def node_ws_package() -> Iterator[Path | None]:
    """A temp dir with the ``ws`` npm package installed (npm install, about a second),
    or None when node or npm is missing or the install fails."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        yield None
        return
    scratch = Path(tempfile.mkdtemp(prefix="pf-bench-ws-"))
    try:
        (scratch / "package.json").write_text('{"name": "pf-bench-ws", "private": true}\n')
        env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_fund": "false"}
        try:
            subprocess.run(
                ["npm", "install", "--no-audit", "--silent", "ws@8"],
                cwd=scratch,
                env=env,
                check=True,
                capture_output=True,
                timeout=180,
            )
        except (OSError, subprocess.SubprocessError):
            yield None
            return
        (scratch / "clients.js").write_text(NODE_CLIENTS)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class WsFleet:
    """``clients`` WebSocket clients on ``url`` spread over ``processes`` processes: node
    scripts using the ``ws`` package when ``node_dir`` holds it, else Python workers
    (websockets). ``batches`` counts the batch messages they received (a per-event
    client gets none). Every process is ended on exit, whatever happened."""

    def __init__(self, url: str, clients: int, processes: int, node_dir: Path | None) -> None:
        self.url = url
        self.shares = [clients // processes + (i < clients % processes) for i in range(processes)]
        self.node_dir = node_dir
        self.kind = "node ws" if node_dir is not None else "python websockets"
        self.batches = 0
        self._nodes: list[subprocess.Popen[bytes]] = []
        self._workers: list[Any] = []
        self._pipes: list[Any] = []

    def __enter__(self) -> WsFleet:
        try:
            for share in self.shares:
                if self.node_dir is not None:
                    self._nodes.append(
                        subprocess.Popen(
                            ["node", str(self.node_dir / "clients.js"), self.url, str(share)],
                            cwd=self.node_dir,
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE,
                        )
                    )
                else:
                    import multiprocessing

                    context = multiprocessing.get_context("spawn")
                    parent, child = context.Pipe()
                    worker = context.Process(target=ws_worker, args=(self.url, share, child))
                    worker.start()
                    self._pipes.append(parent)
                    self._workers.append(worker)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        for proc in self._nodes:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for worker in self._workers:
            worker.join(10)
            if worker.is_alive():
                worker.terminate()
                worker.join(10)

    def _receive(self, index: int, timeout: float) -> Any:
        if self.node_dir is not None:
            stdout = self._nodes[index].stdout
            assert stdout is not None
            ready, _, _ = select.select([stdout], [], [], timeout)
            line = stdout.readline() if ready else b""
            if not line:
                raise TimeoutError(f"WebSocket client process {index} did not answer")
            return json.loads(line)
        pipe = self._pipes[index]
        if not pipe.poll(timeout):
            raise TimeoutError(f"WebSocket worker {index} did not answer")
        return pipe.recv()

    def connected(self, timeout: float = 120.0) -> tuple[int, int]:
        """Wait until every client has its initial_status (or failed); (ok, failed)."""
        ok = failed = 0
        deadline = time.monotonic() + timeout
        for index in range(len(self.shares)):
            answer = self._receive(index, max(0.1, deadline - time.monotonic()))
            if self.node_dir is not None:
                ok, failed = ok + answer["connected"], failed + answer["failed"]
            else:
                ok, failed = ok + answer[1], failed + answer[2]
        return ok, failed

    def events(self, ids: list[str], timeout: float = 60.0) -> list[ClientEvents]:
        """Every client's events of ``ids``, once each has a terminal event for all of
        them (or ``timeout`` passed)."""
        for index in range(len(self.shares)):
            if self.node_dir is not None:
                stdin = self._nodes[index].stdin
                assert stdin is not None
                stdin.write(json.dumps({"ids": ids, "timeout": timeout}).encode() + b"\n")
                stdin.flush()
            else:
                self._pipes[index].send(("ids", ids, timeout))
        reports: list[ClientEvents] = []
        for index in range(len(self.shares)):
            answer = self._receive(index, timeout + 60)
            if self.node_dir is not None:
                clients, batches = answer["events"], answer["batches"]
            else:
                _, clients, batches = answer
            self.batches += batches
            for client in clients:
                reports.append({k: [(t, float(at)) for t, at in v] for k, v in client.items()})
        return reports


def ws_worker(url: str, count: int, pipe: Any) -> None:
    """Hold ``count`` WebSocket clients on ``url`` and report over ``pipe`` (the Python
    twin of NODE_CLIENTS, for machines without npm).

    Protocol: the worker sends ``("connected", n_ok, n_failed)`` once every client has
    its initial_status; the parent answers ``("ids", [buildId, ...], timeout)``; the
    worker waits until every client has a terminal event for each id (or the timeout),
    a short grace for stragglers, then sends ``("events", clients, batches)``: per client,
    a map buildId -> [(type, monotonic arrival time), ...] for those ids, and the number
    of batch messages all of them received; and exits.
    """
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    asyncio.run(_ws_main(url, count, pipe))


async def _ws_main(url: str, count: int, pipe: Any) -> None:
    from websockets.asyncio.client import connect

    loop = asyncio.get_running_loop()
    seen: list[dict[str, list[tuple[str, float]]]] = [{} for _ in range(count)]
    batches = [0]  # batch messages, counted by every client's reader
    ready = [asyncio.Event() for _ in range(count)]
    failed = 0
    gate = asyncio.Semaphore(32)  # connections opened at once
    stop = asyncio.Event()

    async def client(index: int) -> None:
        nonlocal failed
        try:
            async with gate:
                ws = await connect(url, max_size=16 * MiB, open_timeout=30, ping_interval=None)
        except Exception:
            failed += 1
            ready[index].set()
            return
        async with ws:
            reader = asyncio.ensure_future(_read(ws, seen[index], ready[index], batches))
            stopper = asyncio.ensure_future(stop.wait())
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not ready[index].is_set():  # closed before its initial_status
                failed += 1
                ready[index].set()
            for task in (reader, stopper):
                task.cancel()
            await asyncio.gather(reader, stopper, return_exceptions=True)

    tasks = [asyncio.ensure_future(client(i)) for i in range(count)]
    for event in ready:
        await event.wait()
    pipe.send(("connected", count - failed, failed))
    _, ids, timeout = await loop.run_in_executor(None, pipe.recv)
    wanted = set(ids)
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if all(
            all(any(t in TERMINAL for t, _ in events.get(i, ())) for i in wanted) for events in seen
        ):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # anything sent after the terminal event would show up too
    report = [{i: events.get(i, []) for i in ids} for events in seen]
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    pipe.send(("events", report, batches[0]))


async def _read(
    ws: Any, events: dict[str, list[tuple[str, float]]], ready: asyncio.Event, batches: list[int]
) -> None:
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed):
        await _receive(ws, events, ready, batches)


async def _receive(
    ws: Any, events: dict[str, list[tuple[str, float]]], ready: asyncio.Event, batches: list[int]
) -> None:
    async for message in ws:
        now = time.monotonic()
        data = json.loads(message)
        kind = data.get("type")
        updates = data["updates"] if kind == "batch" else [data]
        batches[0] += kind == "batch"
        for update in updates:
            build_id = update.get("buildId")
            if build_id is not None:
                events.setdefault(build_id, []).append((update["type"], now))
        if kind == "initial_status":
            ready.set()
