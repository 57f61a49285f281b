"""pf serve benchmark: each figure beside a baseline measured in the same run.

Everything runs on loopback; every load is bounded in time and every process started
here is stopped here. A wrk figure (wrk -t2 -c64 --latency; -t1 for /api/health, see
http_figures) is the median of 3 runs of
3 s after a 1 s warm-up: this 2-core VM's timings swing by a third from run to run, so
the runs themselves are listed under the table. Figures and targets:

  GET /api/health           req/s >= 5x the original server's (22,165) and p99 <= 20 ms
                            with wrk -t1 (one core for wrk, one for the single-threaded
                            server; -t2 shown too); beside a bare Node.js ``http`` hello
                            server measured the same ways, with pf's share of its rate
  GET /api/status           req/s >= 5x the original's (8,970) with 100 real builds
                            recorded (tiny WAT modules compiled through POST /api/compile)
  token required            /api/health and /api/status (wrk -t1) with a token in the
                            store and on every request, within 10% of the same server
                            open (no token); each mode measured twice, alternating
  1 MiB .wasm               a real module padded with a custom section to 1 MiB, in the
                            served root: with Accept-Encoding: br >= 14x the original's
                            (5,586 req/s), uncompressed >= 5.2x the original's (2,387) and
                            >= 50% of nginx's rate (nginx serving the same file, same run)
  submissions accepted/s    POST /api/compile, >= 1,000/s: distinct sources (every one
                            queues for a real compile) and identical ones (cache hits,
                            a token required and sent, p99 <= 100 ms), both shown beside
                            node hello; wrk with a Lua script for the bodies, 5 s each
  WebSocket fan-out         1,000 clients on /ws (4 processes of 250: node with the
                            ``ws`` npm package installed in a temp dir, or Python
                            websockets without npm; each timestamps arrival on receipt)
                            must all receive every event of 20 builds POSTed 0.25 s
                            apart; POST -> build_started p99 <= 100 ms. Measured twice,
                            one after the other on the same server: per-event clients
                            (the original's: one message per event, no batch may
                            arrive) and batching ones (``/ws?batch=1``, pf's dashboard)
  RSS (VmRSS of the server) idle; with 1,000 idle WebSocket clients <= 80 MB; after
                            1,000 and after 20,000 recorded builds, flat within +-10%
                            (cache hits of one module, submitted by 16 keep-alive
                            connections to a fresh server with default settings, so at
                            most PF_MAX_QUEUE=1000 wait and a 503 is retried); and, for
                            information, after the 5 s burst of cache-hit submissions
                            (PF_MAX_QUEUE raised: thousands wait)

The original server's figures (the Node/Express server pf re-creates, measured with the
same wrk commands on 2 cores: ``ORIGINAL``) are the reference the targets are set from;
each pf figure's ratio to it is printed beside the target. A missed target is printed
as MISSED, never hidden. PF_BENCH_SECONDS and PF_BENCH_RUNS
set the seconds and runs of a wrk figure (3 and 3), PF_BENCH_WS_SPACING the seconds
between the 20 WebSocket-watched builds (0.25). PF_BENCH_ONLY runs only some sections,
a comma-separated list of http, auth, submit, ws, records (all of them by default).
The whole run takes about 2.5 minutes.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pf.toolchains.wasmobj import encode_uleb
from serverkit import (
    Connection,
    MiB,
    PfServer,
    WsFleet,
    closed_loop,
    compile_body,
    fetch,
    get_json,
    median,
    nginx_static,
    node_hello,
    node_ws_package,
    percentile,
    request_bytes,
    wait_idle,
    wrk,
)

ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("PF_BENCH_SECONDS", "3"))
RUNS = int(os.environ.get("PF_BENCH_RUNS", "3"))
SUBMIT_SECONDS = 5
RETRY_503 = 0.05  # seconds a refused submission waits before it is sent again
WS_CLIENTS = 1000
WS_WORKERS = 4
WS_BUILDS = 20
WS_SPACING = float(os.environ.get("PF_BENCH_WS_SPACING", "0.25"))  # seconds between POSTs
SECTIONS = ("http", "auth", "submit", "ws", "records")
ONLY = [s.strip() for s in os.environ.get("PF_BENCH_ONLY", ",".join(SECTIONS)).split(",")]
STATUS_BUILDS = 100
RECORDS = (1_000, 20_000)
WASM_NAME = "bench.wasm"
RUN_NOTES: list[str] = []  # every wrk run's req/s, printed under the table
# The original server's req/s, wrk -t2 -c64 on 2 cores, and the multiple of each pf must
# reach: health 5x, status 5x, the 1 MiB module 5.2x uncompressed and 14x with brotli.
ORIGINAL = {"health": 4_433, "status": 1_794, "identity": 459, "br": 399}
GOAL = {"health": 5.0, "status": 5.0, "identity": 5.2, "br": 14.0}


def versus_original(figure: str, rps: float) -> tuple[str, bool]:
    """The target column for ``figure`` at ``rps`` req/s, and whether it is met."""
    need = ORIGINAL[figure] * GOAL[figure]
    times = rps / ORIGINAL[figure]
    return f">= {need:,.0f}/s; {times:.1f}x orig {ORIGINAL[figure]:,}", times >= GOAL[figure]


# (label, pf value, baseline, target, verdict)
Row = tuple[str, str, str, str, bool | None]
WIDTHS = (46, 13, 34, 32)


def show(row: Row) -> None:
    label, value, baseline, target, ok = row
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    a, b, c, d = WIDTHS
    line = f"{label:<{a}}{value:>{b}}  {baseline:<{c}}{target:<{d}}{verdict}"
    print(line.rstrip(), flush=True)


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


# The 1 MiB wasm module -------------------------------------------------------------------

# (module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
ADD_MODULE = bytes.fromhex(
    "0061736d01000000"  # magic, version
    "0107016002"
    "7f7f017f"  # type section: (i32, i32) -> i32
    "03020100"  # function section
    "070701036164640000"  # export "add" = func 0
    "0a09010700200020016a0b"  # code section
)


def wasm_module(size: int = MiB) -> bytes:
    """A valid module exporting ``add``, padded by a custom section to exactly ``size``
    bytes of instruction-like filler (brotli leaves about a quarter, as of real code)."""
    rng = random.Random(4)
    vocabulary = [rng.randbytes(rng.randint(1, 10)) for _ in range(2000)]
    weights = [1 / (rank + 1) ** 1.3 for rank in range(len(vocabulary))]
    filler = bytearray()
    while len(filler) < size:
        filler += b"".join(rng.choices(vocabulary, weights, k=4096))
    name = b"pf.bench.padding"
    head = encode_uleb(len(name)) + name
    # Section: id 0, payload size as LEB128; find the payload that makes the total exact.
    for size_len in range(1, 6):
        payload_len = size - len(ADD_MODULE) - 1 - size_len
        if len(encode_uleb(payload_len)) == size_len:
            break
    section = b"\x00" + encode_uleb(payload_len) + head + bytes(filler[: payload_len - len(head)])
    module = ADD_MODULE + section
    assert len(module) == size
    return module


def valid_wasm(path: Path) -> bool:
    """Whether node's WebAssembly.validate accepts the module (True when node is missing)."""
    script = f"process.exit(WebAssembly.validate(require('fs').readFileSync({str(path)!r}))?0:1)"
    try:
        return subprocess.run(["node", "-e", script], timeout=30).returncode == 0
    except FileNotFoundError:
        return True


# Figures -------------------------------------------------------------------------------


@dataclass
class Figure:
    """Medians over RUNS wrk runs."""

    rps: float
    p99: float
    failures: int  # non-2xx/3xx answers and socket errors, all runs


def measure(name: str, url: str, headers: dict[str, str] | None = None, threads: int = 2) -> Figure:
    """A 1 s warm-up, then RUNS wrk runs of SECONDS; the runs are noted for the footer."""
    wrk(url, seconds=1, headers=headers, threads=threads)
    runs = [wrk(url, seconds=SECONDS, headers=headers, threads=threads) for _ in range(RUNS)]
    RUN_NOTES.append(
        f"{name}: " + ", ".join(f"{r.rps:,.0f} (p99 {r.latency_ms.get(99, 0):.0f})" for r in runs)
    )
    return Figure(
        rps=median([r.rps for r in runs]),
        p99=median([r.latency_ms.get(99, float("nan")) for r in runs]),
        failures=sum(r.non_2xx + r.socket_errors for r in runs),
    )


def record_status_builds(server: PfServer) -> None:
    """STATUS_BUILDS real builds: distinct WAT modules, each a real wat2wasm run."""
    outcome = asyncio.run(
        closed_loop(
            "127.0.0.1",
            server.port,
            lambda i: request_bytes("POST", "/api/compile", compile_body(i)),
            total=STATUS_BUILDS,
            connections=8,
        )
    )
    if outcome.ok != STATUS_BUILDS:
        raise RuntimeError(f"build submissions failed: {outcome.statuses}")
    wait_idle(server.url)


def http_figures(rows: Callable[[Row], None]) -> None:
    """/api/health and /api/status beside node hello; the 1 MiB wasm beside nginx."""
    scratch = Path(tempfile.mkdtemp(prefix="pf-bench-static-"))
    try:
        module = wasm_module()
        (scratch / WASM_NAME).write_bytes(module)
        if not valid_wasm(scratch / WASM_NAME):
            raise RuntimeError("the padded wasm module does not validate")
        with node_hello() as node:
            hello = measure("node hello -t1", node, threads=1)
            hello2 = measure("node hello", node)
        with nginx_static(scratch) as nginx:
            ngx = measure("nginx wasm", f"{nginx}/{WASM_NAME}")
        with nginx_static(scratch, workers="1") as nginx:
            ngx1 = measure("nginx 1 worker wasm", f"{nginx}/{WASM_NAME}")
        with PfServer(name="http") as server:
            (server.web / WASM_NAME).write_bytes(module)
            # The server runs Python on one thread, as node does. wrk -t1 leaves it one core
            # of the two and wrk the other; with -t2, three busy threads share two cores and
            # a descheduled server thread stalls all 64 connections for a time slice, which
            # is what the p99 then shows (node is cheaper per request, so it idles more and
            # suffers less). Both are measured both ways; -t1 is the figure.
            health = measure("pf /api/health -t1", f"{server.url}/api/health", threads=1)
            target, met = versus_original("health", health.rps)
            rows(
                (
                    "GET /api/health (wrk -t1)",
                    rate(health.rps),
                    f"node hello {rate(hello.rps)} ({health.rps / hello.rps:.0%})",
                    target,
                    met and health.failures == 0,
                )
            )
            rows(
                (
                    "GET /api/health p99 (wrk -t1)",
                    f"{health.p99:.1f} ms",
                    f"node hello {hello.p99:.1f} ms",
                    "<= 20 ms (orig 285-880)",
                    health.p99 <= 20,
                )
            )
            double = measure("pf /api/health", f"{server.url}/api/health")
            rows(
                (
                    "GET /api/health p99, wrk -t2 (cores shared)",
                    f"{double.p99:.1f} ms",
                    f"node {hello2.p99:.1f} ms; {rate(double.rps)}",
                    "(information)",
                    None,
                )
            )

            record_status_builds(server)
            builds = get_json(server.url, "/api/status")["builds"]
            done = sum(1 for b in builds if b["status"] == "completed")
            status = measure("pf /api/status", f"{server.url}/api/status")
            target, met = versus_original("status", status.rps)
            rows(
                (
                    f"GET /api/status, {done} builds completed",
                    rate(status.rps),
                    f"node hello {rate(hello2.rps)} ({status.rps / hello2.rps:.0%})",
                    target,
                    met and status.failures == 0 and done == STATUS_BUILDS,
                )
            )

            url = f"{server.url}/{WASM_NAME}"
            br_size = _wait_brotli(url)
            brotli = measure("pf wasm br", url, {"Accept-Encoding": "br"})
            target, met = versus_original("br", brotli.rps)
            rows(
                (
                    f"1 MiB .wasm, brotli ({br_size / 1e3:.0f} kB sent)",
                    rate(brotli.rps),
                    f"nginx {rate(ngx.rps)} (identity)",
                    target,
                    met and brotli.failures == 0,
                )
            )
            plain = measure("pf wasm identity", url)
            share = plain.rps / ngx.rps if ngx.rps else 0.0
            rows(
                (
                    f"1 MiB .wasm, uncompressed ({share:.0%} of nginx)",
                    rate(plain.rps),
                    f"nginx {rate(ngx.rps)}, 1 worker {rate(ngx1.rps)}",
                    f">= 50% of nginx ({rate(ngx.rps / 2)})",
                    share >= 0.5 and plain.failures == 0,
                )
            )
            target, met = versus_original("identity", plain.rps)
            rows(("1 MiB .wasm, uncompressed, against the original", "", "", target, met))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _until_status(base: str, status: int) -> None:
    """Tokens take effect within about a second of `pf token create` or `revoke`."""
    deadline = time.monotonic() + 10
    while asyncio.run(_get(base, "/api/status", {})).status != status:
        if time.monotonic() > deadline:
            raise RuntimeError(f"/api/status never answered {status}")
        time.sleep(0.1)


def auth_figures(rows: Callable[[Row], None]) -> None:
    """/api/health and /api/status with a token required vs open, on one server with the
    same 100 builds: open, then a token created (every request then carries it), then
    revoked (open again) and created again, so both modes are measured twice."""
    with PfServer(name="auth") as server:
        record_status_builds(server)
        figures: dict[tuple[str, str], list[Figure]] = {}
        for attempt in range(2):
            _until_status(server.url, 200)
            for path in ("/api/health", "/api/status"):
                figures.setdefault(("open", path), []).append(
                    measure(f"pf {path} open", f"{server.url}{path}", threads=1)
                )
            name = f"bench-{attempt}"
            token = server.pf("token", "create", name, "--scope", "read")
            bearer = {"Authorization": f"Bearer {token}"}
            _until_status(server.url, 401)
            for path in ("/api/health", "/api/status"):
                figures.setdefault(("token", path), []).append(
                    measure(f"pf {path} token", f"{server.url}{path}", bearer, threads=1)
                )
            server.pf("token", "revoke", name)
    for path in ("/api/health", "/api/status"):
        open_rps = median([f.rps for f in figures[("open", path)]])
        token_rps = median([f.rps for f in figures[("token", path)]])
        failures = sum(f.failures for mode in ("open", "token") for f in figures[(mode, path)])
        rows(
            (
                f"GET {path}, token required (wrk -t1)",
                rate(token_rps),
                f"open {rate(open_rps)} ({token_rps / open_rps - 1:+.1%})",
                "within 10% of open",
                token_rps >= 0.9 * open_rps and failures == 0,
            )
        )


def _wait_brotli(url: str, timeout: float = 60.0) -> int:
    """Ask for the br variant until the server has made it (once, in the background);
    returns its size."""
    base, path = url.rsplit("/", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = asyncio.run(_get(base, "/" + path, {"Accept-Encoding": "br"}))
        if answer.headers.get("content-encoding") == "br":
            return len(answer.body)
        time.sleep(0.2)
    raise TimeoutError(f"{url} was never served with Content-Encoding: br")


async def _get(base: str, path: str, headers: dict[str, str]) -> Any:
    host, port = base.removeprefix("http://").split(":")
    conn = Connection(host, int(port))
    try:
        return await conn.send(request_bytes("GET", path, headers=headers))
    finally:
        conn.close()


DISTINCT_LUA = """\
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
local headers = {["Content-Type"] = "application/json"}
function request()
  counter = counter + 1
  local n = tid * 100000000 + counter
  local body = '{"language":"wat","target":"wasm","files":{"bench.wat":' ..
    '";; bench module ' .. n .. '\\\\n(module (func (export \\\\"value\\\\") ' ..
    '(result i32) i32.const ' .. n .. '))"}}'
  return wrk.format("POST", "/api/compile", headers, body)
end
"""

SAME_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
"""


def _lua(text: str, scratch: Path, name: str) -> Path:
    path = scratch / name
    path.write_text(text)
    return path


def submission_figures(rows: Callable[[Row], None], scratch: Path) -> None:
    """Build submissions accepted per second: distinct sources (queued), cache hits."""
    queue = {"PF_MAX_QUEUE": "200000", "PF_SHUTDOWN_GRACE": "2"}
    distinct = _lua(DISTINCT_LUA, scratch, "distinct.lua")
    with node_hello() as node:  # the HTTP baseline, measured here so the section stands alone
        hello = wrk(node, seconds=SECONDS)
    with PfServer(queue, name="submit") as server:
        # Check that the Lua bodies are accepted before timing them.
        probe = wrk(
            f"{server.url}/api/compile", seconds=1, threads=1, connections=1, script=distinct
        )
        if probe.non_2xx:
            raise RuntimeError(f"distinct-source bodies refused:\n{probe.output}")
        result = wrk(f"{server.url}/api/compile", seconds=SUBMIT_SECONDS, script=distinct)
        queued = get_json(server.url, "/api/metrics")["queuedBuilds"]
    rows(
        (
            f"submissions accepted, distinct ({queued:,} queued)",
            rate(result.ok_rps),
            f"p99 {result.latency_ms.get(99, float('nan')):.0f} ms",
            ">= 1,000/s (orig 174)",
            result.ok_rps >= 1_000 and result.socket_errors == 0,
        )
    )

    same = compile_body(0)
    with PfServer(queue, name="hits") as server:
        asyncio.run(fetch(server.url, "POST", "/api/compile", same))  # the one real compile
        wait_idle(server.url)
        # As in production: a token required, on every request.
        token = server.pf("token", "create", "bench", "--scope", "build")
        _until_status(server.url, 401)
        same_lua = _lua(
            SAME_LUA.format(body=json.dumps(same.decode()))
            + f'wrk.headers["Authorization"] = "Bearer {token}"\n',
            scratch,
            "same.lua",
        )
        hits = wrk(f"{server.url}/api/compile", seconds=SUBMIT_SECONDS, script=same_lua)
        server.pf("token", "revoke", "bench")  # open again, for the figures below
        _until_status(server.url, 200)
        recorded = wait_idle(server.url)["buildCount"]
        time.sleep(1)
        burst_rss = server.rss_mb()
    hits_p99 = hits.latency_ms.get(99, float("nan"))
    rows(
        (
            "submissions accepted, cache hits, token",
            rate(hits.ok_rps),
            f"node hello {rate(hello.rps)} ({hits.ok_rps / hello.rps:.0%})",
            ">= 1,000/s (orig 294)",
            hits.ok_rps >= 1_000 and hits.socket_errors == 0 and hits.non_2xx == 0,
        )
    )
    rows(
        (
            "submissions accepted, cache hits, p99",
            f"{hits_p99:.0f} ms",
            f"node hello {hello.latency_ms.get(99, float('nan')):.1f} ms",
            "<= 100 ms (pf was at 1.33 s)",
            hits_p99 <= 100,
        )
    )
    rows(
        (
            f"RSS after that burst ({recorded:,} builds)",
            f"{burst_rss:.1f} MB",
            "",
            "(information)",
            None,
        )
    )


def record_figures(rows: Callable[[Row], None]) -> None:
    """RSS after 1,000 and after 20,000 recorded builds: cache hits of one WAT module,
    with the default settings (PF_MAX_QUEUE 1000: a 503 is retried)."""
    same = compile_body(0)
    rss: list[tuple[int, float]] = []
    refused = 0
    with PfServer(name="records") as server:
        asyncio.run(fetch(server.url, "POST", "/api/compile", same))  # the one real compile
        recorded = wait_idle(server.url)["buildCount"]
        for goal in RECORDS:
            refused += asyncio.run(_submit(server.port, same, goal - recorded))
            recorded = wait_idle(server.url)["buildCount"]
            time.sleep(1)
            rss.append((recorded, server.rss_mb()))
    (small_n, small), (large_n, large) = rss
    change = (large - small) / small
    rows((f"RSS after {small_n:,} recorded builds", f"{small:.1f} MB", "", "(reference)", None))
    rows(
        (
            f"RSS after {large_n:,} recorded builds",
            f"{large:.1f} MB",
            f"{change:+.1%} over {small_n:,}; {refused:,} refused",
            "flat: within +-10%",
            abs(change) <= 0.10,
        )
    )


async def _submit(port: int, body: bytes, count: int, connections: int = 16) -> int:
    """Have ``count`` builds accepted over ``connections`` keep-alive connections; a 503
    (queue full) or 429 (this one client's share of the queue is full) is retried after
    RETRY_503 s. Returns the number of refusals."""
    raw = request_bytes("POST", "/api/compile", body)
    left = count
    refused = 0

    async def one_connection() -> None:
        nonlocal left, refused
        conn = Connection("127.0.0.1", port)
        try:
            while left > 0:
                left -= 1
                while (answer := await conn.send(raw)).status in (429, 503):
                    refused += 1
                    await asyncio.sleep(RETRY_503)
                if answer.status >= 300:
                    raise RuntimeError(f"submission refused: {answer.status} {answer.body!r}")
        finally:
            conn.close()

    await asyncio.gather(*(one_connection() for _ in range(min(connections, count))))
    return refused


# The two kinds of WebSocket client: (label, query), per-event first (the default).
WS_KINDS = (("per-event", ""), ("batching", "?batch=1"))


def websocket_figures(rows: Callable[[Row], None]) -> dict[str, Any]:
    """1,000 WebSocket clients in 4 processes, per-event then batching; RSS idle and with
    the per-event ones; 20 builds fanned out to each fleet."""
    figures: dict[str, Any] = {}
    env = {"PF_MAX_WS_CONNECTIONS": str(WS_CLIENTS * 2)}
    with node_ws_package() as node_dir, PfServer(env, name="ws") as server:
        asyncio.run(fetch(server.url, "GET", "/api/health"))
        time.sleep(0.5)
        figures["rss_idle"] = server.rss_mb()
        for number, (kind, query) in enumerate(WS_KINDS):
            ws_url = f"ws://127.0.0.1:{server.port}/ws{query}"
            with WsFleet(ws_url, WS_CLIENTS, WS_WORKERS, node_dir) as fleet:
                figures["clients"] = fleet.kind
                connected, failed = fleet.connected()
                time.sleep(1)
                if number == 0:  # later fleets find memory the earlier one left behind
                    figures["rss_ws"] = server.rss_mb()
                    figures["ws_connected"] = connected
                # Distinct sources per fleet: every build runs the compiler.
                sent = asyncio.run(_post_builds(server.port, 10_000 * (number + 1)))
                reports = fleet.events(list(sent))
            _ws_rows(rows, figures, kind, fleet.batches, sent, reports, failed)
    _rss_rows(rows, figures)
    return figures


async def _post_builds(port: int, first: int) -> dict[str, float]:
    """POST 20 distinct compiles (sources ``first``, ``first + 1``...), WS_SPACING apart;
    buildId -> monotonic time of sending."""
    conn = Connection("127.0.0.1", port)
    sent: dict[str, float] = {}
    try:
        for n in range(WS_BUILDS):
            raw = request_bytes("POST", "/api/compile", compile_body(first + n))
            started = time.monotonic()
            answer = await conn.send(raw)
            if answer.status != 202:
                raise RuntimeError(f"build refused: {answer.status} {answer.body!r}")
            sent[json.loads(answer.body)["buildId"]] = started
            await asyncio.sleep(max(0.0, started + WS_SPACING - time.monotonic()))
    finally:
        conn.close()
    return sent


def _ws_rows(
    rows: Callable[[Row], None],
    figures: dict[str, Any],
    kind: str,
    batches: int,
    sent: dict[str, float],
    reports: list[dict[str, list[tuple[str, float]]]],
    failed: int,
) -> None:
    # The sequence of event types every client should have, per build: the most common.
    expected: dict[str, tuple[str, ...]] = {}
    for build in sent:
        sequences = Counter(tuple(t for t, _ in report[build]) for report in reports)
        expected[build] = sequences.most_common(1)[0][0]
    complete = 0
    latencies: list[float] = []
    for report in reports:
        whole = True
        for build, events in report.items():
            kinds = tuple(t for t, _ in events)
            if kinds != expected[build] or "build_started" not in kinds:
                whole = False
            if not any(k in ("build_completed", "build_failed") for k in kinds):
                whole = False
            latencies += [(at - sent[build]) * 1000 for t, at in events if t == "build_started"]
        complete += whole
    total = sum(len(sequence) for sequence in expected.values())
    counts = Counter(t for sequence in expected.values() for t in sequence)
    listing = ", ".join(f"{n} {k.removeprefix('build_')}" for k, n in counts.items())
    clients = len(reports)
    # A per-event client must never see a batch; a batching one usually does.
    batching = kind != "per-event"
    rows(
        (
            f"WS {kind}: all {total} events of {len(sent)} builds",
            f"{complete:,}/{WS_CLIENTS:,}",
            f"{failed} failed, {batches:,} batches; {figures['clients']}",
            "all 1,000" + ("" if batching else ", no batch"),
            complete == WS_CLIENTS == clients and failed == 0 and (batching or batches == 0),
        )
    )
    print(f"    (events: {listing})")
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    rows((f"WS {kind}: POST -> build_started p50", f"{p50:.1f} ms", "", "(information)", None))
    rows(
        (
            f"WS {kind}: POST -> build_started p99",
            f"{p99:.1f} ms",
            f"{len(latencies):,} events",
            "<= 100 ms (orig 384)",
            p99 <= 100 and len(latencies) == WS_CLIENTS * WS_BUILDS,
        )
    )


def _rss_rows(rows: Callable[[Row], None], figures: dict[str, Any]) -> None:
    rows(("RSS idle", f"{figures['rss_idle']:.1f} MB", "", "(information)", None))
    rows(
        (
            f"RSS with {figures['ws_connected']:,.0f} idle WebSocket clients",
            f"{figures['rss_ws']:.1f} MB",
            f"+{figures['rss_ws'] - figures['rss_idle']:.1f} MB over idle",
            "<= 80 MB",
            figures["rss_ws"] <= 80 and figures["ws_connected"] == WS_CLIENTS,
        )
    )


def main() -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    print(
        f"pf serve benchmark - {os.cpu_count()} cores, loopback; wrk -t2 -c64 unless said, "
        f"median of {RUNS} runs of {SECONDS} s; baselines measured in this run"
    )
    show(("figure", "pf serve", "baseline (same run)", "target (original)", None))
    rule = "-" * (sum(WIDTHS) + 8)
    print(rule)
    unknown = set(ONLY) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"PF_BENCH_ONLY: unknown sections {sorted(unknown)}; known: {SECTIONS}")
    started = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="pf-bench-lua-"))
    try:
        sections: dict[str, Callable[[], Any]] = {
            "http": lambda: http_figures(show),
            "auth": lambda: auth_figures(show),
            "submit": lambda: submission_figures(show, scratch),
            "ws": lambda: websocket_figures(show),
            "records": lambda: record_figures(show),
        }
        for section in SECTIONS:
            if section in ONLY:
                sections[section]()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(rule)
    print("wrk runs, req/s (p99 ms):")
    for note in RUN_NOTES:
        print(f"  {note}")
    print(f"total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
