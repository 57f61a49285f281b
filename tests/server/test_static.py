"""Static files and artifacts (pf.server.static) on a real uvicorn on loopback.

One uvicorn per test module (per xdist worker) serves a Starlette app shaped like pf
serve's: an artifact route using ``file_response`` and the Static app mounted last. Paths
that an HTTP client would normalise (``..``, ``%2e``) are sent over a raw socket.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path

import brotli
import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from pf.server.static import Static, file_response
from pf.server.static._compress import Sidecars, brotli_quality
from pf.server.static._http import (
    Unsatisfiable,
    accepted_codings,
    is_hashed_name,
    media_type_for,
    parse_range,
)

SECRET = b"top secret outside the root\n"
# Compressible and over the 512-byte floor; varied so brotli and gzip differ in size.
TEXT = b"".join(f"line {i}: function f{i}() {{ return {i * 7}; }}\n".encode() for i in range(800))


class Live:
    """A uvicorn server in a thread, bound to port 0."""

    def __init__(self, app: Starlette) -> None:
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            loop="uvloop",
            http="httptools",
            ws="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Live:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class Site:
    """The served tree and the live server, for one test module."""

    port = 0

    def __init__(self, base: Path) -> None:
        self.base = base
        self.web = base / "web"
        self.wasm = base / "built"
        self.cache = base / "cache"
        self.blobs = base / "cas"
        for directory in (self.web, self.wasm, self.blobs, base / "outside"):
            directory.mkdir(parents=True)
        (base / "outside" / "secret.txt").write_bytes(SECRET)
        (self.web / "index.html").write_text("<!doctype html><title>pf</title>\n")
        (self.web / "app.js").write_bytes(TEXT)
        self.static = Static(
            [("/wasm", self.wasm), ("/", self.web)],
            spa_index=self.web / "index.html",
            cache_dir=self.cache,
        )
        # Streams every file over 4 KiB from disk instead of memory.
        self.streaming = Static(
            [("/", self.web)], cache_dir=base / "cache-streaming", memory_file_max=4096
        )

        async def artifact(request: Request) -> Response:
            digest = request.path_params["digest"]
            return await file_response(
                request, self.blobs / digest, etag=digest, immutable=True, name="out.wasm"
            )

        self.app = Starlette(
            routes=[
                Route("/api/artifacts/{digest}", artifact),
                Mount("/streamed", app=self.streaming),
                Mount("/", app=self.static),
            ]
        )
        self.app.state.static = self.static

    def put(self, relative: str, data: bytes, root: Path | None = None) -> Path:
        path = (root or self.web) / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (self.blobs / digest).write_bytes(data)
        return digest


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    built = Site(tmp_path_factory.mktemp("static"))
    with Live(built.app) as live:
        built.port = live.port
        yield built


@pytest.fixture
def http(site: Site) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{site.port}", timeout=10) as client:
        yield client


def raw_get(port: int, target: bytes, method: bytes = b"GET") -> tuple[int, bytes]:
    """Send a request line exactly as given; returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(method + b" " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def wait_for_encoding(http: httpx.Client, url: str, coding: str) -> httpx.Response:
    """Compression runs in the background: poll until the variant is served."""
    deadline = time.monotonic() + 20
    while True:
        response = http.get(url, headers={"Accept-Encoding": coding})
        if response.headers.get("content-encoding") == coding:
            return response
        assert time.monotonic() < deadline, f"no {coding} variant of {url}"
        time.sleep(0.02)


# --- headers of a plain file ---------------------------------------------------------


def test_file_has_strong_etag_last_modified_types_and_isolation_headers(
    site: Site, http: httpx.Client
) -> None:
    data = b"\0asm\1\0\0\0" + os.urandom(3000)
    path = site.put("plain/mod.wasm", data)
    response = http.get("/plain/mod.wasm", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "application/wasm"
    assert response.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert response.headers["last-modified"] == formatdate(int(path.stat().st_mtime), usegmt=True)
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["cross-origin-opener-policy"] == "same-origin"
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert response.headers["vary"] == "accept-encoding"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("a.js", "text/javascript; charset=utf-8"),
        ("a.mjs", "text/javascript; charset=utf-8"),
        ("a.wasm", "application/wasm"),
        ("a.html", "text/html; charset=utf-8"),
        ("a.json", "application/json"),
        ("a.svg", "image/svg+xml"),
        ("a.ll", "text/plain; charset=utf-8"),
        ("noextension", "application/octet-stream"),
    ],
)
def test_media_types(name: str, media_type: str) -> None:
    assert media_type_for(name) == media_type


def test_isolation_headers_on_errors_too(http: httpx.Client) -> None:
    for response in (http.get("/missing.css"), http.post("/index.html")):
        assert response.headers["cross-origin-opener-policy"] == "same-origin"
        assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert http.post("/index.html").status_code == 405


def test_head_has_headers_and_no_body(site: Site, http: httpx.Client) -> None:
    site.put("head.txt", b"x" * 2000)
    response = http.head("/head.txt", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-length"] == "2000"
    assert response.content == b""


def test_a_changed_file_gets_a_new_etag(site: Site, http: httpx.Client) -> None:
    path = site.put("changing.txt", b"first version " * 100)
    first = http.get("/changing.txt").headers["etag"]
    path.write_bytes(b"second version " * 100)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10_000_000))
    second = http.get("/changing.txt")
    assert second.headers["etag"] != first
    assert second.content == b"second version " * 100


# --- conditional requests ------------------------------------------------------------


def test_304_on_if_none_match(site: Site, http: httpx.Client) -> None:
    site.put("cond.txt", b"conditional " * 100)
    etag = http.get("/cond.txt", headers={"Accept-Encoding": "identity"}).headers["etag"]
    for header in (etag, f'"other", {etag}', f"W/{etag}", "*"):
        response = http.get("/cond.txt", headers={"If-None-Match": header})
        assert response.status_code == 304, header
        assert response.content == b""
        assert response.headers["etag"].startswith(etag[:-1])  # "*": the representation's
        assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert http.get("/cond.txt", headers={"If-None-Match": '"nope"'}).status_code == 200


def test_304_on_if_modified_since(site: Site, http: httpx.Client) -> None:
    path = site.put("since.txt", b"since " * 100)
    mtime = int(path.stat().st_mtime)
    same = http.get("/since.txt", headers={"If-Modified-Since": formatdate(mtime, usegmt=True)})
    assert same.status_code == 304
    later = formatdate(mtime + 60, usegmt=True)
    assert http.get("/since.txt", headers={"If-Modified-Since": later}).status_code == 304
    earlier = formatdate(mtime - 60, usegmt=True)
    assert http.get("/since.txt", headers={"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
    both = {"If-None-Match": '"nope"', "If-Modified-Since": later}
    assert http.get("/since.txt", headers=both).status_code == 200
    assert http.get("/since.txt", headers={"If-Modified-Since": "garbage"}).status_code == 200


# --- ranges --------------------------------------------------------------------------


def test_range_206_and_416(site: Site, http: httpx.Client) -> None:
    data = bytes(range(256)) * 40
    site.put("range.bin", data)
    cases = {
        "bytes=0-9": (0, 10),
        "bytes=100-": (100, len(data)),
        "bytes=-16": (len(data) - 16, len(data)),
    }
    for header, (start, end) in cases.items():
        response = http.get("/range.bin", headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == data[start:end]
        assert response.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
        assert response.headers["content-length"] == str(end - start)
    beyond = http.get("/range.bin", headers={"Range": f"bytes={len(data)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(data)}"
    for ignored in ("bytes=0-1,5-6", "bytes=9-2", "items=0-1", "bytes=x-y"):
        whole = http.get("/range.bin", headers={"Range": ignored})
        assert (whole.status_code, whole.content) == (200, data), ignored


def test_if_range(site: Site, http: httpx.Client) -> None:
    site.put("ifrange.bin", b"0123456789" * 100)
    head = http.get("/ifrange.bin").headers
    matching = http.get("/ifrange.bin", headers={"Range": "bytes=0-3", "If-Range": head["etag"]})
    assert (matching.status_code, matching.content) == (206, b"0123")
    by_date = {"Range": "bytes=0-3", "If-Range": head["last-modified"]}
    assert http.get("/ifrange.bin", headers=by_date).status_code == 206
    stale = http.get("/ifrange.bin", headers={"Range": "bytes=0-3", "If-Range": '"old"'})
    assert stale.status_code == 200
    assert len(stale.content) == 1000


def test_a_range_is_served_from_the_identity_bytes(site: Site, http: httpx.Client) -> None:
    site.put("ranged.js", TEXT)
    wait_for_encoding(http, "/ranged.js", "br")
    response = http.get("/ranged.js", headers={"Range": "bytes=0-99", "Accept-Encoding": "br"})
    assert response.status_code == 206
    assert "content-encoding" not in response.headers
    assert response.content == TEXT[:100]


# --- compression ---------------------------------------------------------------------


def test_brotli_and_gzip_negotiation_with_vary(site: Site, http: httpx.Client) -> None:
    site.put("neg.js", TEXT)
    br = wait_for_encoding(http, "/neg.js", "br")
    assert br.content == TEXT  # httpx decodes
    assert br.headers["vary"] == "accept-encoding"
    assert br.headers["etag"].endswith('-br"')
    assert int(br.headers["content-length"]) < len(TEXT) // 2
    cases = {
        "gzip, deflate, br": "br",
        "gzip;q=1.0, br;q=0.5": "gzip",
        "br;q=0, gzip": "gzip",
        "*": "br",
        "identity": None,
        "gzip;q=0, br;q=0": None,
    }
    for header, expected in cases.items():
        response = http.get("/neg.js", headers={"Accept-Encoding": header})
        assert response.headers.get("content-encoding") == expected, header
        assert response.headers["vary"] == "accept-encoding"
        assert response.content == TEXT
    identity = http.get("/neg.js", headers={"Accept-Encoding": "identity"})
    assert identity.headers["etag"] == f'"{hashlib.sha256(TEXT).hexdigest()}"'
    # A validator of any representation of the same bytes revalidates.
    again = http.get(
        "/neg.js", headers={"If-None-Match": br.headers["etag"], "Accept-Encoding": "br"}
    )
    assert again.status_code == 304


def test_variants_are_made_once_and_stored_in_the_sidecar(site: Site, http: httpx.Client) -> None:
    data = TEXT + b"/* made once */\n"
    site.put("once/a.js", data)
    site.put("once/same-bytes.js", data)
    wait_for_encoding(http, "/once/a.js", "br")
    digest = hashlib.sha256(data).hexdigest()
    sidecar = site.cache / "compressed"
    stored = {p.name: p.stat().st_mtime_ns for p in sidecar.iterdir() if p.name.startswith(digest)}
    assert set(stored) == {f"{digest}.br", f"{digest}.gz"}
    assert brotli.decompress((sidecar / f"{digest}.br").read_bytes()) == data
    produced = site.static.files.sidecars.produced
    for _ in range(5):
        for url in ("/once/a.js", "/once/same-bytes.js"):
            for coding in ("br", "gzip"):
                response = http.get(url, headers={"Accept-Encoding": coding})
                assert response.headers["content-encoding"] == coding
                assert response.content == data
    assert site.static.files.sidecars.produced == produced  # same digest: nothing recompressed
    again = {p.name: p.stat().st_mtime_ns for p in sidecar.iterdir() if p.name.startswith(digest)}
    assert again == stored


def test_a_restart_reuses_stored_variants(site: Site, tmp_path: Path) -> None:
    data = TEXT + b"/* restart */\n"
    site.put("restart.js", data)
    with httpx.Client(base_url=f"http://127.0.0.1:{site.port}") as client:
        wait_for_encoding(client, "/restart.js", "br")
    fresh = Static([("/", site.web)], cache_dir=site.cache)
    with Live(Starlette(routes=[Mount("/", app=fresh)])) as live:
        response = httpx.get(
            f"http://127.0.0.1:{live.port}/restart.js", headers={"Accept-Encoding": "br"}
        )
    assert response.headers["content-encoding"] == "br"  # the very first answer
    assert fresh.files.sidecars.produced == 0


def test_missing_sidecar_files_are_made_again(site: Site) -> None:
    data = TEXT + b"/* deleted variant */\n"
    site.put("deleted.js", data)
    digest = hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=f"http://127.0.0.1:{site.port}") as client:
        wait_for_encoding(client, "/deleted.js", "br")
    (site.cache / "compressed" / f"{digest}.br").unlink()
    fresh = Static([("/", site.web)], cache_dir=site.cache)
    with Live(Starlette(routes=[Mount("/", app=fresh)])) as live:
        with httpx.Client(base_url=f"http://127.0.0.1:{live.port}") as client:
            first = client.get("/deleted.js", headers={"Accept-Encoding": "br"})
            assert "content-encoding" not in first.headers
            assert first.content == data
            assert wait_for_encoding(client, "/deleted.js", "br").content == data
    assert (site.cache / "compressed" / f"{digest}.br").exists()


def test_incompressible_and_tiny_files_are_sent_as_they_are(site: Site, http: httpx.Client) -> None:
    noise = os.urandom(5000)  # a compressible type whose content does not compress
    picture = os.urandom(5000)  # a type never compressed
    tiny = b"export const x = 1;\n"  # too small to be worth it
    site.put("noise.wasm", noise)
    site.put("picture.png", picture)
    site.put("tiny.js", tiny)
    for url in ("/noise.wasm", "/picture.png", "/tiny.js"):
        response = http.get(url, headers={"Accept-Encoding": "br, gzip"})
        assert "content-encoding" not in response.headers
    # The producer tried the noise and marked it as not worth compressing.
    marker = site.cache / "compressed" / f"{hashlib.sha256(noise).hexdigest()}.none"
    deadline = time.monotonic() + 10
    while not marker.exists():
        assert time.monotonic() < deadline, "the noise was never tried"
        time.sleep(0.02)
    for url in ("/noise.wasm", "/picture.png", "/tiny.js"):
        response = http.get(url, headers={"Accept-Encoding": "br, gzip"})
        assert "content-encoding" not in response.headers, url
    assert "vary" not in http.get("/picture.png").headers
    digests = {hashlib.sha256(data).hexdigest() for data in (noise, picture, tiny)}
    made = [p.name for p in (site.cache / "compressed").iterdir() if p.name[:64] in digests]
    assert made == [marker.name]


def test_the_sidecar_directory_is_capped(tmp_path: Path) -> None:
    side = tmp_path / "side"
    sidecars = Sidecars(side, max_bytes=10**9, max_files=2, memory_file_max=1 << 20)
    made: list[str] = []

    async def produce_three() -> None:
        done = asyncio.Event()
        for index in range(3):
            source = tmp_path / f"source-{index}.txt"
            content = TEXT + str(index).encode()
            source.write_bytes(content)
            digest = hashlib.sha256(content).hexdigest()
            done.clear()
            sidecars.submit(
                digest,
                str(source),
                verify=True,
                text=True,
                done=lambda d, _v: (made.append(d), done.set()),
            )
            await asyncio.wait_for(done.wait(), 20)

    asyncio.run(produce_three())
    names = sorted(p.name.split(".")[0] for p in side.iterdir())
    assert len(made) == 3
    assert sorted(set(names)) == sorted(made[1:])  # the oldest digest was evicted
    assert sidecars.lookup(made[0]) is None


def test_brotli_quality_favours_size_for_what_is_served() -> None:
    assert brotli_quality(1 << 20) == 11
    assert brotli_quality(16 << 20) < 11


# --- caching policy and artifacts ----------------------------------------------------


def test_hashed_names_are_immutable(site: Site, http: httpx.Client) -> None:
    site.put("assets/app.3f2a9c1b.js", TEXT)
    site.put("assets/app.js", TEXT)
    assert http.get("/assets/app.3f2a9c1b.js").headers["cache-control"] == (
        "public, max-age=31536000, immutable"
    )
    assert http.get("/assets/app.js").headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("name", "hashed"),
    [
        ("app.3f2a9c1b.js", True),
        ("chunk-5d1e9a7f0c.wasm", True),
        ("index.js", False),
        ("report-20240101.js", False),
        ("deadbeef.js", False),
        ("x.deadbeef.js", False),
    ],
)
def test_hashed_name_detection(name: str, hashed: bool) -> None:
    assert is_hashed_name(name) is hashed


def test_artifact_response_is_content_addressed(site: Site, http: httpx.Client) -> None:
    data = b"\0asm\1\0\0\0" + TEXT
    digest = site.blob(data)
    url = f"/api/artifacts/{digest}"
    response = http.get(url, headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["etag"] == f'"{digest}"'
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["content-type"] == "application/wasm"
    assert response.headers["cross-origin-embedder-policy"] == "require-corp"
    assert http.get(url, headers={"If-None-Match": f'"{digest}"'}).status_code == 304
    assert http.get(url, headers={"Range": "bytes=0-3"}).content == b"\0asm"
    br = wait_for_encoding(http, url, "br")
    assert br.content == data
    assert (site.cache / "compressed" / f"{digest}.br").exists()
    missing = http.get(f"/api/artifacts/{'0' * 64}")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Artifact not found"}


def test_big_files_stream_from_disk(site: Site, http: httpx.Client) -> None:
    data = os.urandom(700_000)
    site.put("big/blob.bin", data)
    response = http.get("/streamed/big/blob.bin")
    assert response.status_code == 200
    assert response.content == data
    part = http.get("/streamed/big/blob.bin", headers={"Range": "bytes=300000-600000"})
    assert (part.status_code, part.content) == (206, data[300000:600001])
    assert site.streaming.files._entries  # looked up once, then cached
    (site.web / "big" / "blob.bin").write_bytes(data[:1000])
    assert http.get("/streamed/big/blob.bin").content == data[:1000]


# --- roots, fallback and path safety -------------------------------------------------


def test_wasm_prefix_root_and_fallthrough(site: Site, http: httpx.Client) -> None:
    site.put("rust/hello.wasm", b"\0asm built", root=site.wasm)
    site.put("wasm/c/only-in-web.wasm", b"\0asm web")
    assert http.get("/wasm/rust/hello.wasm").content == b"\0asm built"
    assert http.get("/wasm/c/only-in-web.wasm").content == b"\0asm web"
    assert http.get("/wasmx/rust/hello.wasm").status_code == 404


def test_directories_serve_their_index(site: Site, http: httpx.Client) -> None:
    site.put("docs/index.html", b"<p>docs</p>")
    assert http.get("/docs/").content == b"<p>docs</p>"
    assert http.get("/").content.startswith(b"<!doctype html>")


def test_spa_fallback_only_for_extensionless_non_api_paths(http: httpx.Client) -> None:
    page = http.get("/dashboard/builds/42")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content.startswith(b"<!doctype html>")
    assert http.head("/dashboard").status_code == 200
    assert http.get("/missing.js").status_code == 404
    for api in ("/api/nope", "/api", "/api/builds/x/nothing"):
        response = http.get(api)
        assert response.status_code == 404, api
        assert response.headers["content-type"] == "application/json"
        assert "error" in response.json()


@pytest.mark.parametrize(
    "target",
    [
        b"/../outside/secret.txt",
        b"/wasm/../../outside/secret.txt",
        b"/%2e%2e/outside/secret.txt",
        b"/%2e%2e%2foutside%2fsecret.txt",
        b"/%2E%2E%2Foutside%2Fsecret",
        b"/%252e%252e%252foutside%252fsecret.txt",
        b"/%252e%252e/outside/secret",
        b"/..%5coutside%5csecret.txt",
        b"/..\\outside\\secret.txt",
        b"/index.html%00.js",
        b"/%00",
        b"/./index.html",
        b"/dashboard%0a",
    ],
)
def test_traversal_attempts_are_refused(site: Site, target: bytes) -> None:
    for method in (b"GET", b"HEAD"):
        status, body = raw_get(site.port, target, method)
        assert status in (400, 404), (target, status)
        assert SECRET not in body


def test_absolute_and_outside_symlinks_are_refused(site: Site, http: httpx.Client) -> None:
    outside = site.base / "outside"
    (site.web / "leak.txt").symlink_to(outside / "secret.txt")
    (site.web / "leakdir").symlink_to(outside)
    (site.web / "inside.txt").symlink_to(site.web / "index.html")
    targets = [
        b"//etc/passwd",
        f"/{outside}/secret.txt".encode(),
        f"{outside}/secret.txt".encode(),
        b"/leak.txt",
        b"/leakdir/secret.txt",
        b"/leakdir/secret",
        b"/leakdir/",
    ]
    for target in targets:
        status, body = raw_get(site.port, target)
        assert status in (400, 404), target
        assert SECRET not in body and b"root:" not in body
    assert http.get("/inside.txt").content.startswith(b"<!doctype html>")


def test_dotfiles_are_not_served(site: Site, http: httpx.Client) -> None:
    site.put(".env", b"PASSWORD=x")
    site.put(".git/config", b"[core]")
    site.put(".well-known/security.txt", b"Contact: x")
    assert http.get("/.env").status_code == 404
    assert http.get("/.git/config").status_code == 404
    assert http.get("/.well-known/security.txt").content == b"Contact: x"


# --- header parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "codings"),
    [
        ("gzip, deflate, br", ("br", "gzip")),
        ("gzip", ("gzip",)),
        ("br;q=0.2, gzip;q=0.8", ("gzip", "br")),
        ("*;q=0.5, gzip", ("gzip", "br")),
        ("x-gzip", ("gzip",)),
        ("br;q=0", ()),
        ("br;q=abc, gzip", ("gzip",)),
        ("identity", ()),
        ("", ()),
    ],
)
def test_accepted_codings(header: str, codings: tuple[str, ...]) -> None:
    assert accepted_codings(header) == codings


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, (0, 1)),
        ("bytes=5-100", 10, (5, 10)),
        ("bytes=-3", 10, (7, 10)),
        ("bytes=-30", 10, (0, 10)),
        ("bytes = 2-4", 10, (2, 5)),
        ("bytes=0-1,3-4", 10, None),
        ("bytes=4-2", 10, None),
        ("bytes=-", 10, None),
        ("pages=1-2", 10, None),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=-5", 0)])
def test_parse_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)
