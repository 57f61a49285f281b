"""The repository's own Pfyfile.pf and Pfyfile.web.pf parse, list, and build the demo."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from pf.dsl import parse_file
from tests.conftest import DEMO, ROOT
from tests.e2e.conftest import Project

NAMES = [
    "web-build-rust",
    "web-build-c",
    "web-build-fortran",
    "web-build-wat",
    "web-build-all",
    "build-all-llvm",
    "build-all-asm",
    "web-test",
    "web-dev",
    "api-server",
    "autobuild",
]
LANGS = ("rust", "c", "fortran", "wat")


def test_the_repository_pfyfiles_parse_with_the_known_task_names() -> None:
    pfyfile = parse_file(ROOT / "Pfyfile.pf")
    assert pfyfile.names(None)[: len(NAMES)] == NAMES
    assert pfyfile.groups == ("web",)
    assert {
        "build-rust",
        "build-c",
        "build-fortran",
        "build-wat",
        "build-all",
        "test",
        "dev",
    } <= set(pfyfile.names("web"))
    for name in ("web-build-rust", "web-build-c", "web-build-fortran", "web-build-wat"):
        task = pfyfile.find(None, name)
        assert task is not None
        assert [p.name for p in task.params] == ["target", "opt_level", "jobs"]
    web_dev = pfyfile.find(None, "web-dev")
    assert web_dev is not None and [p.name for p in web_dev.params] == ["port", "dir"]


@pytest.fixture
def repo(project: Project) -> Project:
    """A copy of the demo sources and both Pfyfiles (outputs go into the copy)."""
    shutil.copy(ROOT / "Pfyfile.pf", project.root)
    shutil.copy(ROOT / "Pfyfile.web.pf", project.root)
    target = project.root / "demos" / "polyglot"
    for lang in LANGS:
        shutil.copytree(DEMO / lang, target / lang)
    return project


def _outputs(root: Path, target: str) -> dict[str, list[str]]:
    web = root / "demos" / "polyglot" / "web" / target
    return {
        lang: sorted(p.name for p in (web / lang).iterdir())
        for lang in LANGS
        if (web / lang).is_dir()
    }


def test_web_build_all_then_the_smoke_test(repo: Project) -> None:
    done = repo.run("-j", "2", "web-test", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _outputs(repo.root, "wasm") == {
        "rust": ["lib.wasm"],
        "c": ["math.wasm"],
        "fortran": ["hello.wasm"],
        "wat": ["add.wasm"],
    }
    assert done.stdout.count("add(2, 3) = 5") == 4
    again = repo.run("web-build-all")
    assert again.returncode == 0
    assert "pf: 1 run, 4 skipped (up to date), 0 failed" in again.stderr


def test_the_web_group_builds_the_same_way(repo: Project) -> None:
    done = repo.run("web", "build-c", "target=llvm", "opt_level=1")
    assert done.returncode == 0, done.stderr
    assert "c -> llvm (" in done.stdout
    assert _outputs(repo.root, "llvm") == {"c": ["math.ll"]}
    done = repo.run("web", "build-wat")
    assert done.returncode == 0, done.stderr
    assert (repo.root / "demos/polyglot/web/wasm/wat/add.wasm").is_file()


def test_api_server_runs_pf_serve(repo: Project) -> None:
    # A port that is taken makes pf serve stop at once: the task reaches the real pf serve.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = repo.run("api-server", f"port={port}", timeout=60)
    assert done.returncode != 0
    assert '$ pf serve --host "$host" --port "$port"' in done.stdout + done.stderr
    assert str(port) in done.stderr
