"""More hostile requests against a real pf serve, of kinds and spellings the first attack
tests do not send: every driver (clang, emcc, rustc, flang, wat2wasm) and every target,
macro-built and relative include paths, include!/env!, symbol names in other attributes,
file names a shell or a response file would split, path spellings of protected routes,
body types and Host headers on every state-changing route, and task parameters that a
tool would read as its own flags.

As there: a secret file lives outside the server's directory (and a secret value in the
server's environment); neither may reach any response, artifact, log line, database row
or server log, and the marker path may never be created.
"""

from __future__ import annotations

import http.client
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, wait_for
from tests.server.test_auth import bearer, make_token, wait_for_tokens
from tests.tools import needs_tool

ENV_SECRET = "PF_HELDOUT_ENV_SECRET"


class Loot:
    """Every byte the API gave back, labelled by the request that got it."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, bytes]] = []

    def add(self, label: str, data: bytes) -> None:
        self.parts.append((label, data))

    def holding(self, needle: bytes) -> list[str]:
        return sorted({label for label, part in self.parts if needle in part})


class Arena:
    def __init__(self, base: Path) -> None:
        outside = base / "outside"
        outside.mkdir()
        self.secret = outside / "secret.txt"
        self.needle = f"pf-heldout-{uuid.uuid4().hex}"
        self.secret.write_text(self.needle + "\n")
        self.env_needle = f"pf-env-{uuid.uuid4().hex}"
        self.marker = outside / "marker"
        self.server = Server(
            base / "serve",
            env={"HELDOUT_SECRET": self.env_needle, ENV_SECRET: self.env_needle},
        )


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    made = Arena(tmp_path_factory.mktemp("heldout"))
    made.server.start()
    yield made
    made.server.stop()


def submit(
    http: httpx.Client, loot: Loot, label: str, body: dict[str, object], timeout: float = 180
) -> int:
    """POST /api/compile, follow the build to its end, keep every byte given back."""
    response = http.post("/api/compile", json=body)
    loot.add(label, response.content)
    if response.status_code != 202:
        return response.status_code
    build_id = response.json()["buildId"]
    record = wait_for(http, build_id, timeout=timeout)
    for path in (f"/api/builds/{build_id}", f"/api/logs/{build_id}"):
        loot.add(label, http.get(path).content)
    for artifact in record.get("artifacts") or []:
        loot.add(label, http.get(str(artifact["url"])).content)
    return 202


RUST_F = '#[no_mangle]\npub extern "C" fn f() -> usize { S.len() }\n'
EM = "#include <emscripten.h>\n"
F90_FN = "  use iso_c_binding\n  integer(c_int) :: f\n  f = 1\nend function f\n"


def _c(name: str, text: str, target: str = "wasm", **options: object) -> dict[str, object]:
    return {"language": "c", "target": target, "files": {name: text}, "options": options}


def _rs(text: str, target: str = "wasm", name: str = "lib.rs") -> dict[str, object]:
    return {"language": "rust", "target": target, "files": {name: text}}


def _f90(name: str, text: str, target: str = "wasm") -> dict[str, object]:
    return {"language": "fortran", "target": target, "files": {name: text}}


def reads(secret: Path) -> list[tuple[str, dict[str, object]]]:
    """Requests that try to bring the secret file's bytes (or the server's environment)
    into an output, each a spelling the first attack tests do not use."""
    path = str(secret)
    up = "../" * 24 + path.lstrip("/")
    macro = f'#define P "{path}"\n#include P\nint x;\n'
    line_file = f'# 1 "{path}"\n#include __FILE__\nint x;\n'
    incbin = f'__asm__(".incbin \\"{path}\\"");\n'
    environ = 'const char e[] = {\n#include "/proc/self/environ"\n};\n'
    out: list[tuple[str, dict[str, object]]] = []
    for target in ("wasm", "asm", "llvm"):
        out += [
            (f"c macro include {target}", _c("m.c", macro, target)),
            (f"c relative include {target}", _c("r.c", f'#include "{up}"\n', target)),
            (f"c __FILE__ include {target}", _c("f.c", line_file, target)),
            (f"emcc include {target}", _c("e.c", f'{EM}#include "{path}"\n', target)),
        ]
    keep = "EMSCRIPTEN_KEEPALIVE int g(void) { return x; }\n"
    out += [
        ("c incbin relative", _c("i.c", f'__asm__(".incbin \\"{up}\\"");\nint x;\n')),
        ("c proc environ", _c("p.c", environ)),
        ("emcc proc environ", _c("p.c", EM + environ)),
        ("emcc incbin", _c("e.c", f"{EM}{incbin}int main(void) {{ return 0; }}\n")),
        ("emcc macro include", _c("e.c", f"{EM}{macro}{keep}", emscripten=True, exports=["g"])),
        ("rust include!", _rs(f'pub const S: &str = include!("{path}");\n{RUST_F}')),
        (
            "rust doc include_str",
            _rs(f'#![doc = include_str!("{path}")]\npub static S: &[u8] = b"x";\n{RUST_F}'),
        ),
        (
            "rust concat path",
            _rs(
                "pub static S: &[u8] = "
                f'include_bytes!(concat!("{path[:5]}", "{path[5:]}"));\n{RUST_F}'
            ),
        ),
        ("rust relative path mod", _rs(f'#[path = "{up}"]\nmod m;\n')),
        ("rust env!", _rs(f'pub static S: &str = env!("{ENV_SECRET}");\n{RUST_F}')),
        (
            "rust option_env!",
            _rs(
                "pub static S: &str = "
                'match option_env!("HELDOUT_SECRET") { Some(s) => s, None => "" };\n' + RUST_F
            ),
        ),
        (
            "rust proc environ",
            _rs(f'pub static S: &[u8] = include_bytes!("/proc/self/environ");\n{RUST_F}'),
        ),
        (
            "rust asm target",
            _rs(f'pub static S: &[u8] = include_bytes!("{path}");\n{RUST_F}', "asm"),
        ),
        (
            "fortran double-quoted include",
            _f90("a.f90", f'program p\n  include "{path}"\nend program p\n'),
        ),
        (
            "fortran INCLUDE relative",
            _f90("a.f90", f"PROGRAM P\n  INCLUDE '{up}'\nEND PROGRAM P\n"),
        ),
        ("fortran cpp macro", _f90("a.F90", f"{macro}program p\nend program p\n")),
        (
            "fortran llvm include",
            _f90("a.f90", f"program p\ninclude '{path}'\nend program p\n", "llvm"),
        ),
    ]
    return out


def writes(marker: Path) -> list[tuple[str, dict[str, object]]]:
    """Names a tool, a shell or a response file might split into flags, in spellings the
    first tests do not use; and options that try to smuggle a flag in."""
    out = str(marker)
    one = "int f(void) { return 1; }\n"
    call_g = 'extern "C" { fn g() -> i32; }\n'
    use_g = '#[no_mangle]\npub extern "C" fn f() -> i32 { unsafe { g() } }\n'
    wat_export = f'(module (func (export "-o{out}") (result i32) i32.const 1))\n'
    return [
        ("c shell name", _c(f"$(touch {out}).c", "int x;\n")),
        ("c backtick name", _c(f"`touch {out}`;.c", "int x;\n")),
        ("c quoted name", _c(f'a" -o "{out}.c', "int x;\n")),
        ("c spaced name", _c(f"x -o {out} y.c", "int x;\n")),
        ("c export_name", _c("a.c", f'__attribute__((export_name("-o{out}"))) {one}')),
        ("c export_name spaces", _c("a.c", f'__attribute__((export_name("x -o {out}"))) {one}')),
        (
            "c import_module",
            _c(
                "a.c",
                f'__attribute__((import_module("@{out}"), import_name("-o{out}"))) '
                "int g(void);\nint f(void) { return g(); }\n",
            ),
        ),
        (
            "emcc keepalive label",
            _c("e.c", f'{EM}EMSCRIPTEN_KEEPALIVE int f(void) __asm__("-o{out}");\n{one}'),
        ),
        ("emcc spaced name", _c(f"x -o {out}.c", "int x;\n", emscripten=True)),
        ("emcc export comma", _c("e.c", one, emscripten=True, exports=["f,_g"])),
        ("emcc export flag", _c("e.c", one, emscripten=True, exports=[f"-o{out}"])),
        ("emcc export bracket", _c("e.c", one, emscripten=True, exports=["f]", "['x"])),
        ("c opt_level flag", _c("a.c", "int x;\n", opt_level=f"2 -o {out}")),
        ("c passes flag", _c("a.c", "int x;\n", "llvm", passes=f"default<O2> -o {out}")),
        ("c passes dot", _c("a.c", "int x;\n", "llvm", passes="dot-cfg-only")),
        (
            "rust link_name",
            _rs(f'extern "C" {{ #[link_name = "-o{out}"] fn g() -> i32; }}\n{use_g}'),
        ),
        (
            "rust import module",
            _rs(f'#[link(wasm_import_module = "@{out}")]\n{call_g}{use_g}'),
        ),
        ("rust spaced name", _rs("pub fn f() {}\n", name=f"x --emit=link={out} y.rs")),
        (
            "rust export_name spaces",
            _rs(f'#[export_name = "x -o {out}"]\npub extern "C" fn f() -> i32 {{ 1 }}\n'),
        ),
        (
            "fortran bind name spaces",
            _f90("b.f90", f"function f() bind(C, name='x -o {out}')\n{F90_FN}"),
        ),
        ("fortran shell name", _f90(f"$(touch {out}).f90", "program p\nend program p\n")),
        ("wat spaced name", {"language": "wat", "files": {f"x -o {out}.wat": "(module)\n"}}),
        (
            "wat export name",
            {"language": "wat", "target": "asm", "files": {"a.wat": wat_export}},
        ),
    ]


@needs_tool("bwrap", "emcc", "rustc", "flang-new-19", "wat2wasm")
def test_no_request_of_any_driver_reads_the_host_or_writes_a_file(arena: Arena) -> None:
    loot = Loot()
    statuses = []
    with httpx.Client(base_url=arena.server.url, timeout=120) as http:
        for label, body in [*reads(arena.secret), *writes(arena.marker)]:
            statuses.append((label, submit(http, loot, label, body)))
        loot.add("status", http.get("/api/status").content)
        loot.add("modules", http.get("/api/modules").content)
    assert [s for s in statuses if s[1] not in (202, 400)] == []
    for needle in (arena.needle.encode(), arena.env_needle.encode()):
        assert loot.holding(needle) == [], "a secret reached these requests' answers"
    arena.server.stop()
    for path in arena.server.workdir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert arena.needle.encode() not in data, f"the secret reached {path}"
            assert arena.env_needle.encode() not in data, f"the environment reached {path}"
    assert not any(p.name.startswith(arena.marker.name) for p in arena.marker.parent.iterdir())
    arena.server.start()


# --------------------------------------------------------------------------- routes


def raw(
    server: Server, method: str, target: str, headers: dict[str, str], body: bytes = b""
) -> int:
    """One request with its target sent exactly as written (httpx would normalise it);
    its status, or 299 for a 2xx whose body is the web root's index page (the SPA
    fallback answers any unknown page path with it)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": "127.0.0.1", **headers}.items():
            conn.putheader(name, value)
        if body:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        answer = conn.getresponse()
        data = answer.read()
        size = answer.getheader("content-length")
        if answer.status == 200 and (data == INDEX or (method == "HEAD" and size == "38")):
            return 299
        return answer.status
    finally:
        conn.close()


INDEX = b"<!doctype html><title>pf demo</title>\n"
SPELLINGS = (
    "//api/tasks/hello",
    "/api//tasks/hello",
    "/api/tasks/hello/",
    "/api/./tasks/hello",
    "/api/tasks/../tasks/hello",
    "/x/../api/tasks/hello",
    "/%61pi/tasks/hello",
    "/api%2ftasks%2fhello",
    "/API/tasks/hello",
    "/api/tasks/hello;x",
    "/api/tasks/hello?x=1",
    "http://127.0.0.1/api/tasks/hello",
)
READ_SPELLINGS = (
    "//metrics",
    "/metrics/",
    "/./metrics",
    "//wasm/c/c_trap.js",
    "/./wasm/c/c_trap.js",
    "/x/../wasm/c/c_trap.js",
    "/wasm//c/c_trap.js",
    "/%77asm/c/c_trap.js",
    "//api/status",
    "/api/status/",
    "/./api/status",
    "//api/system",
    "//api/modules",
)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """A server with a task that would write the marker, a published module in its web
    root, and a token per scope."""
    base = tmp_path_factory.mktemp("heldout-auth")
    marker = base / "ran"
    server = Server(base / "serve", env={"PFY_FILE": ""})
    (server.projects / "Pfyfile.pf").write_text(f"task hello\n  shell touch {marker}\nend\n")
    published = server.web / "wasm" / "c"
    published.mkdir(parents=True)
    (published / "c_trap.js").write_text("// published module, read scope only\n")
    server.start()
    tokens = {s: make_token(server, f"t-{s}", s) for s in ("read", "build", "admin")}
    with httpx.Client(base_url=server.url) as http:
        wait_for_tokens(http, *tokens.values())
    tokens["marker"] = str(marker)
    yield server, tokens
    server.stop()


def test_no_spelling_of_a_task_path_runs_it_below_admin(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    server, tokens = guarded
    body = b'{"params": {}}'
    for spelling in SPELLINGS:
        for who in ({}, bearer(tokens["read"]), bearer(tokens["build"])):
            status = raw(
                server, "POST", spelling, {**who, "Content-Type": "application/json"}, body
            )
            assert status >= 300, f"POST {spelling} with {who or 'no token'}: {status}"
    assert not Path(tokens["marker"]).exists(), "a task ran for a token below admin"


def test_no_spelling_of_a_read_path_answers_without_a_token(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    server, tokens = guarded
    # The published file is there for a reader.
    assert raw(server, "GET", "/wasm/c/c_trap.js", bearer(tokens["read"])) == 200
    for spelling in READ_SPELLINGS:
        for method in ("GET", "HEAD"):
            status = raw(server, method, spelling, {})
            assert status >= 299 and status != 304, f"{method} {spelling}: {status}"


STATE_CHANGING = (
    ("POST", "/api/compile", b'{"language": "wat", "files": {"a.wat": "(module)"}}'),
    ("POST", "/api/build/wat", b"{}"),
    ("POST", "/api/build/all", b"{}"),
    ("POST", "/api/tasks/hello", b'{"params": {}}'),
    ("POST", "/api/session", b'{"token": "pf_x"}'),
)
# Types a page on another site can send without a preflight, and near misses of JSON.
NOT_JSON = (
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain; application/json",
    "application/json-patch+json",
    "application/jsonx",
    "text/json",
    "application/json; charset=utf-16",
    "application/json, text/plain",
    "",
)


def test_every_state_changing_route_refuses_bodies_a_page_can_send(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    server, tokens = guarded
    admin = bearer(tokens["admin"])
    for method, path, body in STATE_CHANGING:
        for content_type in NOT_JSON:
            headers = {**admin, "Content-Type": content_type} if content_type else admin
            status = raw(server, method, path, headers, body)
            assert status == 415, f"{method} {path} as {content_type!r}: {status}"
    assert not Path(tokens["marker"]).exists()


FOREIGN_HOSTS = (
    "evil.example",
    "localhost.evil.example",
    "127.0.0.1.nip.io",
    "evil.example:80@127.0.0.1",
    "127.0.0.1@evil.example",
    "127.0.0.2",
    "0.0.0.0",
    "[::ffff:127.0.0.1]",
    "127.1",
    "2130706433",
)


def test_every_route_refuses_a_foreign_host(guarded: tuple[Server, dict[str, str]]) -> None:
    server, tokens = guarded
    admin = {**bearer(tokens["admin"]), "Content-Type": "application/json"}
    for host in FOREIGN_HOSTS:
        for method, path, body in (
            *STATE_CHANGING,
            ("GET", "/api/modules", b""),
            ("GET", "/wasm/c/c_trap.js", b""),
            ("GET", "/metrics", b""),
            ("GET", "/api/system", b""),
        ):
            status = raw(server, method, path, {**admin, "Host": host}, body)
            assert status == 400, f"{method} {path} with Host {host!r}: {status}"
    assert not Path(tokens["marker"]).exists()


def test_websocket_origins_that_only_look_local_are_refused(
    guarded: tuple[Server, dict[str, str]],
) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    server, tokens = guarded
    for origin in (
        "null",
        "http://localhost.evil.example",
        "http://127.0.0.1.nip.io",
        "http://evil.example#@127.0.0.1",
        "file://",
        "http://127.0.0.1:1@evil.example",
    ):
        for path in ("/ws", "/"):
            url = f"ws://127.0.0.1:{server.port}{path}"
            with pytest.raises(InvalidStatus) as refused:
                connect(url, origin=origin, additional_headers=bearer(tokens["read"])).close()  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403, (origin, path)


# --------------------------------------------------------------------------- tasks

SYNC_PFYFILE = """\
task push host
  describe Copy the site to a host (its name is a parameter)
  sync src=site/ dest=site-copy host=${host}
end

task local dir
  describe Copy a folder of the caller's choice here
  sync src=${dir} dest=copy/
end

task deps pkg
  packages install ${pkg}
end

task hello
  shell echo hello
end
"""


@pytest.fixture(scope="module")
def tasks_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, str], Path]]:
    base = tmp_path_factory.mktemp("heldout-tasks")
    server = Server(base / "serve", env={"PFY_FILE": ""})
    (server.projects / "Pfyfile.pf").write_text(SYNC_PFYFILE)
    (server.projects / "site").mkdir()
    (server.projects / "site" / "index.html").write_text("site\n")
    server.start()
    tokens = {s: make_token(server, f"t-{s}", s) for s in ("read", "build", "admin")}
    with httpx.Client(base_url=server.url) as http:
        wait_for_tokens(http, *tokens.values())
    yield server, tokens, base
    server.stop()


def test_host_parameters_are_admin_only_and_declared_only(
    tasks_server: tuple[Server, dict[str, str], Path],
) -> None:
    server, tokens, _ = tasks_server
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for params in (
            {"hosts": "-oProxyCommand=true"},
            {"host": "example.org"},
            {"user": "root"},
            {"port": "22"},
            {"env": "prod"},
            {"sudo": "true"},
            {"hosts": "@local"},
        ):
            for scope in ("read", "build"):
                answer = http.post(
                    "/api/tasks/hello", json={"params": params}, headers=bearer(tokens[scope])
                )
                assert answer.status_code == 403, (scope, params, answer.text)
            answer = http.post(
                "/api/tasks/hello", json={"params": params}, headers=bearer(tokens["admin"])
            )
            assert answer.status_code == 400, (params, answer.text)
            assert answer.json()["code"] == "invalid-parameter"


@needs_tool("rsync")
def test_a_task_parameter_never_becomes_a_flag_of_the_tool_it_reaches(
    tasks_server: tuple[Server, dict[str, str], Path],
) -> None:
    server, tokens, base = tasks_server
    marker = base / "pwned"
    runs = [
        # ssh's ProxyCommand runs a shell command: as a host, or as a user, name.
        ("push", {"host": f"-oProxyCommand=touch {marker}"}),
        ("push", {"host": f"-oProxyCommand=sh -c 'touch {marker}'"}),
        ("push", {"host": f"-oProxyCommand=touch${{IFS}}{marker.name}"}),
        # rsync's own options, from a path operand.
        ("local", {"dir": f"--rsh=sh -c 'touch {marker}'"}),
        ("local", {"dir": f"-e sh -c 'touch {marker}'"}),
        ("local", {"dir": f"--rsync-path=touch {marker}"}),
        # apt-get reads -o as configuration, which can run commands.
        ("deps", {"pkg": f"-oAPT::Update::Pre-Invoke::=touch {marker}"}),
        ("deps", {"pkg": f"--option=DPkg::Pre-Invoke::=touch {marker}"}),
    ]
    with httpx.Client(base_url=server.url, timeout=60, headers=bearer(tokens["admin"])) as http:
        for name, params in runs:
            answer = http.post(f"/api/tasks/{name}", json={"params": params})
            if answer.status_code == 202:
                record = wait_for(http, answer.json()["buildId"], timeout=60)
                assert record["status"] == "failed", (name, params, record)
            else:
                assert answer.status_code == 400, (name, params, answer.text)
    assert not marker.exists(), "a task parameter ran a command as a tool's option"
    assert not (server.projects / marker.name).exists()


def test_ipv4_clients_of_a_dual_stack_bind_each_have_their_own_rate(
    make_server: type[Server], tmp_path: Path
) -> None:
    server = make_server(
        tmp_path / "w",
        env={"PF_RATE_LIMIT": "1", "PF_RATE_BURST": "2"},
        args=("--host", "::", "--insecure-no-auth"),
    ).start()
    url = f"http://127.0.0.1:{server.port}"

    def statuses(source: str) -> list[int]:
        transport = httpx.HTTPTransport(local_address=source)
        with httpx.Client(base_url=url, transport=transport, timeout=30) as http:
            return [http.post("/api/compile", json={}).status_code for _ in range(3)]

    # The first client spends its burst; another address is another client.
    assert statuses("127.0.0.1") == [400, 400, 429]
    assert statuses("127.0.0.2") == [400, 400, 429]
