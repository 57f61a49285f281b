"""Fingerprints, glob expansion and the bounded, atomically written state file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pf.dsl import parse_text
from pf.tasks import uptodate


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ("src/a.c", "src/b.c", "src/deep/c.c", "src/readme.md", "lib/x.c"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return tmp_path


def test_expand(tree: Path) -> None:
    root = str(tree)
    assert uptodate.expand(["src/*.c"], root) == ["src/a.c", "src/b.c"]
    assert uptodate.expand(["src/**/*.c", "src/a.c"], root) == [
        "src/a.c",
        "src/b.c",
        "src/deep/c.c",
    ]
    assert uptodate.expand(["lib"], root) == ["lib/x.c"]
    assert uptodate.expand(["missing.c", "none/*.c"], root) == []
    assert uptodate.outputs_exist(["src/*.md", "lib/x.c"], root)
    assert not uptodate.outputs_exist(["src/*.md", "out/*.wasm"], root)


def test_fingerprint_follows_content_values_and_definition(tree: Path) -> None:
    task = parse_text("task t\n  sources src/*.c\n  shell cc src/*.c\nend\n").tasks[(None, "t")]
    other = parse_text("task t\n  sources src/*.c\n  shell cc -O2 src/*.c\nend\n").tasks[
        (None, "t")
    ]
    root = str(tree)
    files = uptodate.expand(task.sources, root)
    first = uptodate.fingerprint(task, {"x": "1"}, files, root)
    assert first == uptodate.fingerprint(task, {"x": "1"}, files, root)
    assert first != uptodate.fingerprint(task, {"x": "2"}, files, root)
    assert first != uptodate.fingerprint(other, {"x": "1"}, files, root)
    (tree / "src" / "a.c").write_text("src/a.c")  # same bytes: same fingerprint
    assert first == uptodate.fingerprint(task, {"x": "1"}, files, root)
    (tree / "src" / "a.c").write_text("src/a.C")
    assert first != uptodate.fingerprint(task, {"x": "1"}, files, root)


def test_state_is_bounded_and_survives_damage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(uptodate, "MAX_ENTRIES", 3)
    state = uptodate.State(str(tmp_path))
    for n in range(5):
        state.record(f"t{n}", f"d{n}")
    data = json.loads((tmp_path / ".pf" / "tasks-state.json").read_text())
    assert list(data["tasks"]) == ["t2", "t3", "t4"]
    assert [p.name for p in (tmp_path / ".pf").iterdir()] == ["tasks-state.json"]  # no temp left
    again = uptodate.State(str(tmp_path))
    assert again.fresh("t4", "d4") and not again.fresh("t0", "d0") and not again.fresh("t4", "x")
    (tmp_path / ".pf" / "tasks-state.json").write_text("[1, 2")
    assert not uptodate.State(str(tmp_path)).fresh("t4", "d4")
