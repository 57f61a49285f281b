"""Files a compile reads beyond its request: parsed from the make-style dependency files
a plan names, recorded with their digests, and re-hashed on lookup. The compiles are real
clang runs; the plan is the C driver's, with a dependency file of this test's own, so the
test does not depend on which plans list theirs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pf.config import Settings, load_settings
from pf.engine import compile as engine_compile
from pf.engine import compile_sources
from pf.engine.depfiles import parse, toolchain_prefixes
from pf.engine.manifests import Manifests
from pf.errors import CompileFailed
from pf.toolchains import CompileRequest, Driver, Plan, Run, SourceFile, driver_for_request

DEPFILE = "obj/fixture.d"


def _manifest(settings: Settings, key: str) -> dict[str, Any]:
    found = Manifests(settings.cache_dir).get(key)
    assert found is not None
    data: dict[str, Any] = json.loads(found[0])
    return data


def test_make_syntax_continuations_escapes_and_comments() -> None:
    text = (
        "obj/a.o: a.c /abs/dir\\ with\\ space/k.h \\\n"
        "  /usr/include/stdio.h\\\n"
        " /x/h\\#ash.h /x/dol$$lar.h\n"
        "\n"
        "# env-dep:RUSTFLAGS\n"
        "/abs/dir\\ with\\ space/k.h:\n"
        "out/lib.d: src/lib.rs /abs/n.txt\n"
    )
    assert parse(text) == [
        "a.c",
        "/abs/dir with space/k.h",
        "/usr/include/stdio.h",
        "/x/h#ash.h",
        "/x/dol$lar.h",
        "src/lib.rs",
        "/abs/n.txt",
    ]


def test_toolchain_prefixes_are_those_of_tools_in_a_bin_directory(tmp_path: Path) -> None:
    prefixes = toolchain_prefixes(["/opt/rust/bin/rustc", str(tmp_path / "clang")])
    assert "/opt/rust/" in prefixes
    assert not any(str(tmp_path).startswith(p) for p in prefixes)


class _WithDepfile:
    """The C driver, its compile step also writing this test's dependency file."""

    def __init__(self, inner: Driver) -> None:
        self.inner = inner
        self.id = inner.id
        self.language = inner.language
        self.targets = inner.targets

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def plan(self, request: CompileRequest) -> Plan:
        plan = self.inner.plan(request)
        steps = tuple(
            dataclasses.replace(s, argv=(*s.argv, "-MD", "-MF", DEPFILE))
            if isinstance(s, Run) and s.label == "compile"
            else s
            for s in plan.steps
        )
        return dataclasses.replace(plan, steps=steps, depfiles=(DEPFILE,))


@pytest.fixture
def counted(counted: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The counting clang, with every C plan writing the depfile this file's tests read."""
    monkeypatch.setattr(
        engine_compile,
        "driver_for_request",
        lambda request: _WithDepfile(driver_for_request(request)),
    )
    return counted


def _starts(log: Path) -> int:
    return len(log.read_text().splitlines())


def test_an_edited_absolute_include_misses_and_an_unchanged_one_hits(
    counted: Path, tmp_path: Path
) -> None:
    header = tmp_path / "dir with space" / "k.h"
    header.parent.mkdir()
    header.write_text("#define K 1\n")
    source = (
        f'#include <stdint.h>\n#include "{header}"\n#include "local.h"\n'
        "int32_t k(void) { return K + LOCAL; }\n"
    ).encode()
    request = CompileRequest(
        "c",
        "wasm",
        (SourceFile("add.c", source), SourceFile("local.h", b"#define LOCAL 3\n")),
    )
    settings = load_settings()
    first = compile_sources(request, settings)
    # Only the file outside the request and outside the system directories is recorded.
    assert [path for path, _ in _manifest(settings, first.key)["deps"]] == [str(header)]
    assert compile_sources(request, settings).cached

    header.write_text("#define K 2\n")
    starts = _starts(counted)
    second = compile_sources(request, settings)
    assert not second.cached
    assert _starts(counted) > starts
    assert second.artifacts[0].digest != first.artifacts[0].digest
    assert compile_sources(request, settings).cached

    header.unlink()
    with pytest.raises(CompileFailed):
        compile_sources(request, settings)


def test_a_compile_reading_only_its_own_and_system_files_records_none(counted: Path) -> None:
    request = CompileRequest(
        "c", "wasm", (SourceFile("add.c", b"#include <stdint.h>\nint32_t f(void) { return 1; }\n"),)
    )
    settings = load_settings()
    built = compile_sources(request, settings)
    assert _manifest(settings, built.key)["deps"] == []
    assert compile_sources(request, settings).cached
