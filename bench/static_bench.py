"""Static files: pf's own file server against the libraries that could replace it.

pf serves its pages and artifacts with its own static layer (src/pf/server/static/: strong
ETags, ranges, brotli/gzip variants made once per digest, an in-memory LRU). The question
this answers is whether it earns its place over a well-kept library, side by side in one
run on the same files, each app alone in one uvicorn process:

  pf             pf.server.static.Static (the layer pf serve mounts at /)
  Starlette      starlette.staticfiles.StaticFiles (no compression of its own)
  ServeStatic    servestatic.ServeStaticASGI (the ASGI WhiteNoise) over files that
                 `python -m servestatic.compress` pre-compressed to .br and .gz

Requests (wrk -t1 -c64: one core for wrk, one for the server): an 8 KiB page, a 1 MiB
wasm module plain and with Accept-Encoding: br, and a revalidation answered 304. pf's own
is kept only where it is clearly faster (>= 1.2x the best library); docs/architecture.md
records the outcome. PF_BENCH_SECONDS / PF_BENCH_RUNS set the length of a figure.

    python bench/static_bench.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from server_bench import wasm_module
from serverkit import free_port, median, wrk

SECONDS = int(os.environ.get("PF_BENCH_SECONDS", "3"))
RUNS = int(os.environ.get("PF_BENCH_RUNS", "3"))
APPS = ("pf", "Starlette", "ServeStatic")
KEEP = 1.2  # pf's own stays only where it is at least this much faster than a library

PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>pf</title></head><body>"
    + "<p>WebAssembly, LLVM IR and asm.js from Rust, C, Fortran and WAT.</p>\n" * 110
    + "</body></html>\n"
)


def _app(kind: str, root: Path, scratch: Path) -> object:
    if kind == "pf":
        from pf.server.static import Static

        return Static([("/", root)], cache_dir=scratch / "pf-cache")
    if kind == "Starlette":
        from starlette.staticfiles import StaticFiles

        return StaticFiles(directory=root)
    from servestatic import ServeStaticASGI

    # No application behind it: every bench path is a file, and max_age as pf's
    # revalidated files have it.
    return ServeStaticASGI(None, root=root, max_age=0)


def serve(kind: str, root: Path, scratch: Path, port: int) -> None:
    """Run one app on ``port`` until killed (the child side of ``_started``)."""
    import uvicorn

    uvicorn.run(
        _app(kind, root, scratch),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


def _started(kind: str, root: Path, scratch: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve", kind, str(root), str(scratch), str(port)]
    proc = subprocess.Popen(argv, cwd=Path(__file__).parent)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{base}/index.html", timeout=1)
            return proc, base
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{kind} did not start") from None
            time.sleep(0.05)


def _until_brotli(base: str) -> None:
    """pf makes its brotli variant in the background: wait until it is served."""
    deadline = time.monotonic() + 60
    while True:
        answer = httpx.get(f"{base}/app.wasm", headers={"Accept-Encoding": "br"})
        if answer.headers.get("content-encoding") == "br":
            return
        if time.monotonic() > deadline:
            raise RuntimeError("no brotli variant of /app.wasm after 60 s")
        time.sleep(0.2)


def _figure(url: str, headers: dict[str, str]) -> tuple[float, float, int]:
    """Median req/s and p99 ms over RUNS runs after a warm-up, and failed answers."""
    wrk(url, seconds=1, threads=1, headers=headers)
    runs = [wrk(url, seconds=SECONDS, threads=1, headers=headers) for _ in range(RUNS)]
    return (
        median([r.rps for r in runs]),
        median([r.latency_ms.get(99, float("nan")) for r in runs]),
        sum(r.socket_errors + r.non_2xx for r in runs),
    )


def _cases(base: str) -> dict[str, tuple[str, dict[str, str], int, str | None]]:
    """label -> (url, request headers, expected status, expected content-encoding)."""
    plain = {"Accept-Encoding": "identity"}
    etag = httpx.get(f"{base}/app.wasm", headers=plain).headers["etag"]
    return {
        "8 KiB page": (f"{base}/index.html", plain, 200, None),
        "1 MiB wasm, identity": (f"{base}/app.wasm", plain, 200, None),
        "1 MiB wasm, br": (f"{base}/app.wasm", {"Accept-Encoding": "br"}, 200, "br"),
        "1 MiB wasm, 304": (f"{base}/app.wasm", {**plain, "If-None-Match": etag}, 304, None),
    }


def _checked(case: tuple[str, dict[str, str], int, str | None], kind: str, label: str) -> None:
    """Every app must really answer the case as labelled before it is timed."""
    url, headers, status, coding = case
    answer = httpx.get(url, headers=headers)
    if answer.status_code != status or answer.headers.get("content-encoding") != coding:
        raise RuntimeError(
            f"{kind} answered {label} with {answer.status_code} "
            f"content-encoding={answer.headers.get('content-encoding')}"
        )


def main() -> None:
    print(
        f"static files - {os.cpu_count()} cores, loopback, one uvicorn process per app, "
        f"wrk -t1 -c64, median of {RUNS} x {SECONDS} s: req/s (p99 ms)"
    )
    with tempfile.TemporaryDirectory(prefix="pf-static-bench-") as tmp:
        scratch = Path(tmp)
        root = scratch / "www"
        root.mkdir()
        (root / "index.html").write_text(PAGE)
        (root / "app.wasm").write_bytes(wasm_module())
        subprocess.run(
            [sys.executable, "-m", "servestatic.compress", "--quiet", str(root)], check=True
        )
        figures: dict[str, dict[str, tuple[float, float, int]]] = {}
        for kind in APPS:
            proc, base = _started(kind, root, scratch)
            try:
                if kind == "pf":
                    _until_brotli(base)
                figures[kind] = {}
                for label, case in _cases(base).items():
                    if kind == "Starlette" and case[3] is not None:
                        continue  # StaticFiles does not compress
                    _checked(case, kind, label)
                    figures[kind][label] = _figure(case[0], case[1])
            finally:
                proc.kill()
                proc.wait()
    print(f"{'request':<24}" + "".join(f"{kind:>22}" for kind in APPS) + "  pf / best library")
    for label in figures["pf"]:
        cells = ""
        for kind in APPS:
            if label not in figures[kind]:
                cells += f"{'n/a':>22}"
                continue
            rps, p99, failed = figures[kind][label]
            cells += f"{f'{rps:,.0f} ({p99:.1f})' + (' !' if failed else ''):>22}"
        best = max(figures[k][label][0] for k in APPS[1:] if label in figures[k])
        ratio = figures["pf"][label][0] / best
        verdict = "pf's own earns its place" if ratio >= KEEP else "a library would do"
        print(f"{label:<24}{cells}  {ratio:.2f}x  {verdict}")
    print("(! marks a figure with failed answers)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
    else:
        main()
