"""Hostile compile requests against a real pf serve: nothing outside the request gets in or out.

A secret file is created outside the server's directory, and a marker path is named that
no request may ever create. Each request below tries one way of reading the secret into
an artifact, a diagnostic or a log, or of turning a name it chose into a flag of a tool.
Afterwards the secret's bytes must be in no response, artifact, log line, database file or
server log, and the marker must not exist. The payloads are kinds, not instances: each
kind is tried through more than one language or spelling.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import Server, wait_for


class Loot:
    """Everything each request got back, to be searched for the secret."""

    def __init__(self) -> None:
        self.parts: list[tuple[str, bytes]] = []
        self.label = ""

    def add(self, data: bytes) -> None:
        self.parts.append((self.label, data))

    def holding(self, needle: bytes) -> list[str]:
        return sorted({label for label, part in self.parts if needle in part})


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, Path]]:
    base = tmp_path_factory.mktemp("attacks")
    outside = base / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text(f"pf-secret-{uuid.uuid4().hex}\n")
    marker = outside / "marker"
    server = Server(base / "serve").start()
    yield server, secret, marker
    server.stop()


def _compile(http: httpx.Client, loot: Loot, language: str, files: dict[str, str]) -> int:
    """Submit, follow the build to its end, and keep every byte the API gives back."""
    response = http.post("/api/compile", json={"language": language, "files": files})
    loot.add(response.content)
    if response.status_code != 202:
        return response.status_code
    build_id = response.json()["buildId"]
    record = wait_for(http, build_id, timeout=120)
    for path in (f"/api/builds/{build_id}", f"/api/logs/{build_id}"):
        loot.add(http.get(path).content)
    for artifact in record.get("artifacts") or []:
        loot.add(http.get(str(artifact["url"])).content)
    return 202


def _reads(secret: Path) -> list[tuple[str, dict[str, str]]]:
    path = str(secret)
    return [
        ("c", {"inc.c": f'#include "{path}"\nint x;\n'}),
        ("c", {"inc.c": f"#include <{path}>\nint x;\n"}),
        # The file's text as a string literal: an include inside an initialiser.
        ("c", {"str.c": f'const char s[] = {{\n#include "{path}"\n}};\n'}),
        ("c", {"bin.c": f'__asm__(".section .data,\\"\\",@\\n.incbin \\"{path}\\"\\n");\n'}),
        ("c", {"bin.c": f'__asm__(".incbin \\"{path}\\"");\nint main(void) {{ return 0; }}\n'}),
        (
            "rust",
            {
                "lib.rs": f'#[no_mangle]\npub static S: &[u8] = include_bytes!("{path}");\n'
                '#[no_mangle]\npub extern "C" fn f() -> usize { S.len() }\n'
            },
        ),
        (
            "rust",
            {
                "lib.rs": f'#[no_mangle]\npub static S: &str = include_str!("{path}");\n'
                '#[no_mangle]\npub extern "C" fn f() -> usize { S.len() }\n'
            },
        ),
        ("rust", {"lib.rs": f'#[path = "{path}"]\nmod m;\n'}),
        ("fortran", {"inc.f90": f"program p\ninclude '{path}'\nend program p\n"}),
        ("fortran", {"inc.F90": f'#include "{path}"\nprogram p\nend program p\n'}),
    ]


def _flags(marker: Path) -> list[tuple[str, dict[str, str]]]:
    """Names the sender chooses that a tool might take for flags or response files."""
    out = str(marker)
    return [
        ("c", {f"@{out}.c": "int x;\n"}),
        ("c", {f"-MF{out}.c": "int x;\n"}),
        ("c", {"a.c": f'int f(void) __asm__("-o{out}");\nint f(void) {{ return 1; }}\n'}),
        ("c", {"a.c": f'int f(void) __asm__("@{out}");\nint f(void) {{ return 1; }}\n'}),
        (
            "c",
            {
                "a.c": f'int f(void) __asm__("x --export={out} -o {out}");\n'
                "int f(void) { return 1; }\n"
            },
        ),
        ("rust", {f"--emit=link={out}.rs": "pub fn f() {}\n"}),
        (
            "rust",
            {"lib.rs": f'#[export_name = "-o{out}"]\npub extern "C" fn f() -> i32 {{ 1 }}\n'},
        ),
        (
            "fortran",
            {
                "b.f90": f"function f() bind(C, name='-o{out}')\n"
                "  use iso_c_binding\n  integer(c_int) :: f\n  f = 1\nend function f\n"
            },
        ),
        ("wat", {f"-o{out}.wat": "(module)\n"}),
    ]


def test_no_request_reads_a_file_outside_it_or_writes_one(
    arena: tuple[Server, Path, Path],
) -> None:
    server, secret, marker = arena
    loot = Loot()
    statuses = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for language, files in [*_reads(secret), *_flags(marker)]:
            loot.label = f"{language} {files}"
            statuses.append((loot.label, _compile(http, loot, language, files)))
        loot.label = "GET /api/status"
        loot.add(http.get("/api/status").content)
    # Every request was answered as the caller's mistake or run as a build: never a 5xx.
    assert [s for s in statuses if s[1] not in (202, 400)] == []
    needle = secret.read_bytes().strip()
    assert loot.holding(needle) == [], "the secret reached these requests' answers"
    server.stop()
    for path in server.workdir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert needle not in path.read_bytes(), f"the secret reached {path}"
    assert not any(p.name.startswith(marker.name) for p in marker.parent.iterdir())
