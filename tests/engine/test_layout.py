"""Where a project build's outputs are published (engine.layout), on real project dirs."""

from __future__ import annotations

from pathlib import Path

from pf.engine.layout import published_path, source_folder
from pf.engine.projects import discover

ORIGINAL_DEMO = Path(__file__).resolve().parents[1] / "original_demo"


def test_the_folder_is_where_the_sources_live() -> None:
    project = discover(ORIGINAL_DEMO / "pf-web-polyglot-demo-plus-c")
    assert source_folder(project, "wat") == "asm"
    assert source_folder(project, "c") == "c"
    assert source_folder(project, "fortran") == "fortran"  # fortran/src/hello.f90
    assert published_path("wasm", "asm", "mini.wasm") == "wasm/asm/mini.wasm"


def test_sources_at_the_top_or_no_project_use_the_language(tmp_path: Path) -> None:
    (tmp_path / "add.wat").write_text("(module)\n")
    assert source_folder(discover(tmp_path), "wat") == "wat"
    assert source_folder(None, "c") == "c"
    assert source_folder(discover(tmp_path), "c") == "c"
