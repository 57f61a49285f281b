"""engine.taskruns in-process: which Pfyfile pf serve reads, its listing, calls, failures."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from pf.config import Settings
from pf.engine.taskruns import (
    InvalidParameter,
    PfyfileInvalid,
    Pfyfiles,
    TaskNotFound,
    execute,
    failure,
)

TASKS = 'task build mode="debug" [alias b]\n  describe Build it\n  shell echo "built $mode"\nend\n'


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    projects, cwd = tmp_path / "projects", tmp_path / "cwd" / "sub"
    projects.mkdir()
    cwd.mkdir(parents=True)
    return projects, cwd


def test_pfy_file_then_projects_root_then_nearest_from_cwd(dirs: tuple[Path, Path]) -> None:
    projects, cwd = dirs
    settings = Settings()
    found = Pfyfiles(settings, projects, cwd)
    assert found.locate() is None
    assert found.listing() == {"pfyfile": None, "tasks": [], "errors": []}
    above = cwd.parent / "Pfyfile.pf"
    above.write_text(TASKS)
    assert found.locate() == above
    (projects / "Pfyfile.pf").write_text(TASKS)
    assert found.locate() == projects / "Pfyfile.pf"
    named = Pfyfiles(replace(settings, pfy_file=Path("other.pf")), projects, cwd)
    with pytest.raises(PfyfileInvalid, match="PFY_FILE names"):
        named.locate()
    (cwd / "other.pf").write_text(TASKS)
    assert named.locate() == cwd / "other.pf"


def test_listing_follows_edits_and_renders_parse_errors(dirs: tuple[Path, Path]) -> None:
    projects, cwd = dirs
    pfyfile = projects / "Pfyfile.pf"
    pfyfile.write_text(TASKS)
    found = Pfyfiles(Settings(), projects, cwd)
    (task,) = found.listing()["tasks"]
    assert task == {
        "id": "build",
        "name": "build",
        "group": None,
        "description": "Build it",
        "params": [{"name": "mode", "default": "debug"}],
        "aliases": ["b"],
    }
    assert found.load() is found.load()  # parsed once while unchanged
    (projects / "Pfyfile.web.pf").write_text("task serve\n  shell true\nend\n")
    assert [t["id"] for t in found.listing()["tasks"]] == ["build", "web:serve"]
    pfyfile.write_text("task build\n  include x.pf\nend\n")
    with pytest.raises(PfyfileInvalid) as raised:
        found.listing()
    assert f"--> {pfyfile}:2:3" in raised.value.message
    assert raised.value.http_status == 503


def test_calls_resolve_names_and_check_params(dirs: tuple[Path, Path]) -> None:
    projects, cwd = dirs
    (projects / "Pfyfile.pf").write_text(TASKS)
    (projects / "Pfyfile.web.pf").write_text("task serve port\n  shell true\nend\n")
    found = Pfyfiles(Settings(), projects, cwd)
    assert found.call("b", {}).name == "build"
    assert found.call("web:serve", {"port": "1"}).params == {"port": "1"}
    with pytest.raises(TaskNotFound, match="did you mean `build`"):
        found.call("buld", {})
    with pytest.raises(TaskNotFound, match="did you mean `web:serve`"):
        found.call("serve", {})
    with pytest.raises(InvalidParameter, match="did you mean `mode`"):
        found.call("build", {"mod": "x"})
    with pytest.raises(InvalidParameter, match="its parameters: port"):
        found.call("web:serve", {"x": "1"})
    with pytest.raises(InvalidParameter, match="NUL"):
        found.call("web:serve", {"port": "1\0"})


def test_execute_reports_lines_and_the_failing_line(dirs: tuple[Path, Path]) -> None:
    projects, cwd = dirs
    (projects / "Pfyfile.pf").write_text(TASKS + "task bad\n  shell exit 4\nend\n")
    found = Pfyfiles(Settings(), projects, cwd)
    lines: list[tuple[str, str]] = []

    def sink(stream: str, text: str) -> None:
        lines.append((stream, text))

    ok = execute(found.call("build", {"mode": "fast"}), Settings(), None, threading.Event(), sink)
    assert ok.code == 0
    assert lines == [("pf", '$ echo "built $mode"'), ("stdout", "built fast")]
    call = found.call("bad", {})
    outcome = execute(call, Settings(), None, threading.Event(), sink)
    error = failure(call, outcome)
    assert error.returncode == 4
    assert error.message == "task `bad` failed (Pfyfile.pf:6:3): a command exited with code 4"
