"""The listing cache behind ``pf list`` and completion: used when current, never stale."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from pf.cli import listing
from tests.e2e.conftest import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    return Project(root)


def _age(*paths: Path) -> None:
    # Files written this instant are not cached (they may change under the parse).
    past = time.time() - 60
    for path in paths:
        os.utime(path, (past, past))


def test_a_current_cache_is_used_and_any_change_invalidates_it(project: Project) -> None:
    main = project.pfyfile('include more.pf\ntask a x="1"\n  describe First\n  shell true\nend\n')
    more = project.write("more.pf", "task b [alias bb]\n  shell true\nend\n")
    _age(main, more)
    first = project.run("list")
    assert first.returncode == 0, first.stderr
    cached = listing.read(str(main))
    assert cached is not None
    assert [(e.name, e.params, e.aliases, e.describe) for e in cached.entries] == [
        ("b", [], ["bb"], ""),  # the include comes first in the file
        ("a", [("x", "1")], [], "First"),
    ]
    assert project.run("list").stdout == first.stdout

    more.write_text("task b [alias bb]\n  describe Now described\n  shell true\nend\n")
    assert "Now described" in project.run("list").stdout  # an included file changed
    _age(more)
    project.run("list")
    group = project.write("Pfyfile.web.pf", "task w\n  shell true\nend\n")
    _age(group)
    assert "group web" in project.run("list").stdout  # a new group file beside the main one
    group.unlink()
    assert "group web" not in project.run("list").stdout


def test_a_damaged_or_foreign_cache_is_ignored(project: Project) -> None:
    main = project.pfyfile("task a\n  shell true\nend\n")
    _age(main)
    project.run("list")
    cache = project.root / ".pf" / "list-Pfyfile.pf.cache"
    assert cache.is_file()
    for junk in [
        "",
        "garbage",
        cache.read_text().replace("\tT\t", "\tX\t") + "Z\tbad\n",
        "\x00\x01",
    ]:
        cache.write_text(junk)
        done = project.run("list")
        assert done.returncode == 0 and done.stdout == "Pfyfile.pf\n  a\n"


def test_escaping_round_trips(tmp_path: Path) -> None:
    entry = listing.Entry("g", "t", "/a\tb/c", [("p", 'x\ty\\n "q"'), ("q", None)], ["t2"], "d\\e")
    original = listing.Listing(str(tmp_path / "Pfyfile.pf"), [entry], ["g"])
    (tmp_path / "Pfyfile.pf").write_text("")
    _age(tmp_path / "Pfyfile.pf")
    listing.write(original, (str(tmp_path / "Pfyfile.pf"),), time.time_ns())
    back = listing.read(str(tmp_path / "Pfyfile.pf"))
    assert back is not None
    (got,) = back.entries
    assert (got.group, got.name, got.file, got.params, got.aliases, got.describe) == (
        "g",
        "t",
        "/a\tb/c",
        [("p", 'x\ty\\n "q"'), ("q", None)],
        ["t2"],
        "d\\e",
    )


def test_an_unwritable_directory_still_lists(project: Project) -> None:
    main = project.pfyfile("task a\n  shell true\nend\n")
    _age(main)
    (project.root / ".pf").write_text("a file where the directory would go")
    done = project.run("list")
    assert done.returncode == 0 and done.stdout == "Pfyfile.pf\n  a\n"


def test_files_are_shown_relative_to_where_pf_list_runs(project: Project) -> None:
    main = project.pfyfile("include lib/more.pf\ntask a\n  shell true\nend\n")
    more = project.write("lib/more.pf", "task b\n  shell true\nend\n")
    group = project.write("Pfyfile.web.pf", "task w\n  shell true\nend\n")
    _age(main, more, group)
    for _ in range(2):  # parsed, then from the cache
        here = project.run("list").stdout.splitlines()
        assert "Pfyfile.pf" in here and "lib/more.pf" in here
        assert "group web  (Pfyfile.web.pf)" in here
        below = project.run("list", cwd=project.root / "lib").stdout.splitlines()
        assert "../Pfyfile.pf" in below and "more.pf" in below
        assert "group web  (../Pfyfile.web.pf)" in below
