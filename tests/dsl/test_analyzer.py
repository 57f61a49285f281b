"""Analyzer: includes, groups, duplicate names, aliases, needs and cycles, with real files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from pf.dsl import DslError, dump, parse_file, parse_text


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "Pfyfile.pf"


def error(root: Path, files: dict[str, str]) -> DslError:
    """The one error of a folder: a file left out of the load, or a failing load."""
    main = write(root, files)
    try:
        found = list(parse_file(main).errors.values())
    except DslError as caught:
        return caught
    assert len(found) == 1, found
    return found[0]


def test_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "Pfyfile.pf": "include sub/a.pf\ntask root\nend\n",
            "sub/a.pf": "include deeper/b.pf\ntask a\nend\n",
            "sub/deeper/b.pf": "env B=1\ntask b\nend\n",
        },
    )
    pf = parse_file(main)
    assert [k for k in pf.tasks] == [(None, "b"), (None, "a"), (None, "root")]
    assert pf.tasks[None, "b"].file == str(tmp_path / "sub/deeper/b.pf")
    assert pf.env == {"B": "1"}
    assert pf.files == (
        str(main),
        str(tmp_path / "sub/a.pf"),
        str(tmp_path / "sub/deeper/b.pf"),
    )


def test_double_inclusion_is_a_no_op(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "Pfyfile.pf": "include common.pf\ninclude ./common.pf\ninclude other.pf\n",
            "common.pf": "task c\nend\n",
            "other.pf": "include common.pf\ntask o\nend\n",
        },
    )
    assert list(parse_file(main).tasks) == [(None, "c"), (None, "o")]


def test_include_cycle_shows_the_chain(tmp_path: Path) -> None:
    err = error(
        tmp_path,
        {
            "Pfyfile.pf": "include a.pf\n",
            "a.pf": "task a\nend\ninclude b.pf\n",
            "b.pf": "include a.pf\n",
        },
    )
    assert err.kind == "include-cycle"
    main, a, b = (str(tmp_path / n) for n in ("Pfyfile.pf", "a.pf", "b.pf"))
    assert err.message == f"include cycle: {a} -> {b} -> {a}"
    assert err.span is not None
    assert (err.span.path, err.span.line, err.span.col, err.span.length) == (b, 1, 9, 4)
    assert main not in err.message


def test_self_include_is_a_cycle(tmp_path: Path) -> None:
    err = error(tmp_path, {"Pfyfile.pf": "include Pfyfile.pf\n"})
    assert err.kind == "include-cycle"


def test_missing_include_points_at_the_include_line(tmp_path: Path) -> None:
    err = error(tmp_path, {"Pfyfile.pf": "task a\nend\n\ninclude  'no such.pf'\n"})
    assert err.kind == "include-not-found"
    assert err.span is not None
    assert (err.span.line, err.span.col, err.span.length) == (4, 10, 12)
    assert "no such.pf" in err.message


def test_unreadable_main_file_is_a_dsl_error(tmp_path: Path) -> None:
    with pytest.raises(DslError) as caught:
        parse_file(tmp_path / "missing.pf")
    assert caught.value.kind == "read-error"
    assert caught.value.span is None


def test_error_in_included_file_names_that_file(tmp_path: Path) -> None:
    err = error(tmp_path, {"Pfyfile.pf": "include x.pf\n", "x.pf": "task a\n  include y\nend\n"})
    assert err.span is not None
    assert (err.span.path, err.span.line) == (str(tmp_path / "x.pf"), 2)


def test_groups_from_included_and_sibling_files(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "Pfyfile.pf": "include lib/Pfyfile.api.pf\ntask build\nend\n",
            "lib/Pfyfile.api.pf": "include helpers.pf\ntask build\nend\n",
            "lib/helpers.pf": "task helper\nend\n",
            "Pfyfile.web.pf": "env PORT=8080\ntask build-rust [alias br]\n  needs build\nend\n",
            "Pfyfile.pf.bak": "not a pfyfile",
            "notes.pf": "garbage that is never read",
        },
    )
    pf = parse_file(main)
    assert list(pf.tasks) == [
        ("api", "helper"),
        ("api", "build"),
        (None, "build"),
        ("web", "build-rust"),
    ]
    assert pf.groups == ("api", "web")
    assert pf.find("web", "br") is pf.tasks["web", "build-rust"]
    # `needs build` in group web falls back to the main scope.
    assert pf.tasks["web", "build-rust"].needs == ((None, "build"),)
    assert pf.env_for(pf.tasks["web", "build-rust"]) == {"PORT": "8080"}
    assert pf.env_for(pf.tasks[None, "build"]) == {}
    assert pf.names("web") == ["build-rust", "br"]


def test_sibling_groups_are_optional(tmp_path: Path) -> None:
    main = write(tmp_path, {"Pfyfile.pf": "task a\nend\n", "Pfyfile.web.pf": "task b\nend\n"})
    assert list(parse_file(main, siblings=False).tasks) == [(None, "a")]
    assert list(parse_text("task a\nend\n", main).tasks) == [(None, "a")]
    assert len(parse_text("task a\nend\n", main, siblings=True).tasks) == 2


def test_relative_main_path_keeps_relative_display_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"Pfyfile.pf": "include sub/x.pf\n", "sub/x.pf": "task a\n  include\nend\n"})
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DslError) as caught:
        parse_file("Pfyfile.pf", siblings=False)
    assert str(caught.value.span) == os.path.join("sub", "x.pf") + ":2:3"


def test_same_name_in_different_groups_is_fine(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {"Pfyfile.pf": "task build\nend\n", "Pfyfile.web.pf": "task build\nend\n"},
    )
    pf = parse_file(main)
    assert pf.find(None, "build") is not pf.find("web", "build")


def warning(root: Path, files: dict[str, str]) -> DslError:
    """The one warning of loading a folder."""
    pf = parse_file(write(root, files))
    assert not pf.errors
    [found] = pf.warnings
    return found


def test_redefined_task_warns_with_both_positions_and_the_last_wins(tmp_path: Path) -> None:
    files = {"Pfyfile.pf": "include a.pf\ntask x\nend\n", "a.pf": "\ntask  x\n  shell a\nend\n"}
    err = warning(tmp_path, files)
    assert err.kind == "task-redefined"
    assert err.severity == "warning"
    assert err.message == "`x` is defined again in the main scope; this later definition is used"
    assert parse_file(tmp_path / "Pfyfile.pf").tasks[None, "x"].body == ()
    assert err.span is not None
    assert (err.span.path, err.span.line, err.span.col) == (str(tmp_path / "Pfyfile.pf"), 2, 6)
    [first] = err.related
    assert (first.path, first.line, first.col) == (str(tmp_path / "a.pf"), 2, 7)


@pytest.mark.parametrize(
    ("text", "line", "col"),
    [
        ("task a [alias b]\nend\ntask b\nend\n", 3, 6),
        ("task a [alias b]\nend\ntask c [alias b]\nend\n", 3, 15),
        ("task a [alias a]\nend\n", 1, 15),
    ],
)
def test_alias_clashes_are_duplicates(text: str, line: int, col: int) -> None:
    with pytest.raises(DslError) as caught:
        parse_text(text)
    assert caught.value.kind == "duplicate-task"
    assert caught.value.span is not None
    assert (caught.value.span.line, caught.value.span.col) == (line, col)


def test_redefined_group_task_names_the_group(tmp_path: Path) -> None:
    err = warning(
        tmp_path,
        {"Pfyfile.pf": "task a\nend\n", "Pfyfile.web.pf": "task b\nend\ntask b\nend\n"},
    )
    assert err.message == "`b` is defined again in group `web`; this later definition is used"


def test_a_redefined_task_takes_its_aliases_away() -> None:
    pf = parse_text("task a [alias b]\nend\ntask a [alias b|alias c]\nend\n")
    assert pf.find(None, "c") is pf.find(None, "b") is pf.tasks[None, "a"]
    assert pf.tasks[None, "a"].aliases == ("b", "c")


def test_needs_resolve_aliases_dedupe_and_qualified_names(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "Pfyfile.pf": """\
                task setup [alias s]
                end
                task all
                  needs s setup web:build
                  needs web:b
                end
                """,
            "Pfyfile.web.pf": "task build [alias b]\nend\n",
        },
    )
    pf = parse_file(main)
    assert pf.tasks[None, "all"].needs == ((None, "setup"), ("web", "build"))


@pytest.mark.parametrize(
    ("text", "kind", "message", "hint", "where"),
    [
        (
            "task a\n  needs biuld\nend\ntask build\nend\n",
            "unknown-dependency",
            "task `a` needs unknown task `biuld`",
            "did you mean `build`?",
            (2, 9, 5),
        ),
        (
            "task a\n  needs zzz\nend\n",
            "unknown-dependency",
            "task `a` needs unknown task `zzz`",
            "`needs` names tasks of the same group, the main file, or `group:task`",
            (2, 9, 3),
        ),
        (
            "task a\n  needs web:b\nend\n",
            "unknown-group",
            "task `a` needs `web:b`, but there is no group `web`",
            "groups come from files named `Pfyfile.<group>.pf`",
            (2, 9, 5),
        ),
        (
            "task a\n  needs b\nend\ntask b\n  needs c\nend\ntask c\n  needs a\nend\n",
            "dependency-cycle",
            "dependency cycle: a -> b -> c -> a",
            "a task cannot need itself, even indirectly",
            (8, 9, 1),
        ),
        (
            "task a\n  needs a\nend\n",
            "dependency-cycle",
            "dependency cycle: a -> a",
            "a task cannot need itself, even indirectly",
            (2, 9, 1),
        ),
    ],
)
def test_needs_errors(
    text: str, kind: str, message: str, hint: str, where: tuple[int, int, int]
) -> None:
    with pytest.raises(DslError) as caught:
        parse_text(text)
    err = caught.value
    assert (err.kind, err.message, err.hint) == (kind, message, hint)
    assert err.span is not None
    assert (err.span.line, err.span.col, err.span.length) == where


def test_qualified_suggestion(tmp_path: Path) -> None:
    err = error(
        tmp_path,
        {"Pfyfile.pf": "task a\n  needs web:buld\nend\n", "Pfyfile.web.pf": "task build\nend\n"},
    )
    assert err.hint == "did you mean `web:build`?"


def test_diamond_is_not_a_cycle() -> None:
    pf = parse_text(
        "task a\n  needs b c\nend\ntask b\n  needs d\nend\ntask c\n  needs d\nend\ntask d\nend\n"
    )
    assert pf.tasks[None, "a"].needs == ((None, "b"), (None, "c"))


def test_hosts_and_duplicate_hosts() -> None:
    pf = parse_text("hosts prod = a@h1:22, h2\n")
    assert pf.hosts == {"prod": ("a@h1:22", "h2")}
    with pytest.raises(DslError) as caught:
        parse_text("hosts p = a\n\nhosts p = b\n")
    assert caught.value.kind == "duplicate-hosts"
    assert [s.line for s in caught.value.related] == [1]


def test_task_model_conveniences() -> None:
    pf = parse_text('task t a b="2" [alias tt]\n  describe Hello\nend\n')
    task = pf.tasks[None, "t"]
    assert task.key == (None, "t")
    assert task.describe == "Hello"
    assert task.defaults() == {"a": None, "b": "2"}
    assert task.aliases == ("tt",)
    assert pf.find(None, "nope") is None
    assert dump(pf) == 'task t a b="2" [alias tt]\n  describe "Hello"\nend'


def test_a_broken_group_file_is_left_out_with_its_error(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "Pfyfile.pf": "env A=1\ntask a\nend\n",
            "Pfyfile.ops.pf": "env B=2\ntask deploy\nend\n",
            "Pfyfile.web.pf": "env C=3\nhosts h = x\ntask ok\nend\ntask b\n  include x\nend\n",
        },
    )
    pf = parse_file(main)
    assert list(pf.tasks) == [(None, "a"), ("ops", "deploy")]
    assert pf.group_env == {"ops": {"B": "2"}}  # nothing of the left-out file stays
    assert pf.hosts == {}
    [(path, err)] = pf.errors.items()
    assert path == str(tmp_path / "Pfyfile.web.pf")
    assert err.kind == "top-level-only" and err.span is not None and err.span.line == 6


def test_a_broken_main_file_raises_unless_asked_to_keep_going(tmp_path: Path) -> None:
    main = write(
        tmp_path, {"Pfyfile.pf": "task a\n  include x\nend\n", "Pfyfile.web.pf": "task b\nend\n"}
    )
    with pytest.raises(DslError):
        parse_file(main)
    pf = parse_file(main, keep_going=True)
    assert list(pf.tasks) == [("web", "b")]
    assert list(pf.errors) == [str(main)]
    with pytest.raises(DslError):  # an unreadable main file leaves nothing to list
        parse_file(tmp_path / "missing.pf", keep_going=True)


def test_a_broken_group_file_leaves_an_earlier_groups_env_as_it_was(tmp_path: Path) -> None:
    # Pfyfile.b.pf adds to group a's env through another Pfyfile.a.pf, then fails.
    main = write(
        tmp_path,
        {
            "Pfyfile.pf": "task m\nend\n",
            "Pfyfile.a.pf": "env A=1\ntask a\nend\n",
            "Pfyfile.b.pf": "include sub/Pfyfile.a.pf\ntask b\n  include x\nend\n",
            "sub/Pfyfile.a.pf": "env A=2 A2=3\n",
        },
    )
    pf = parse_file(main)
    assert list(pf.errors) == [str(tmp_path / "Pfyfile.b.pf")]
    assert pf.group_env == {"a": {"A": "1"}}
    assert list(pf.tasks) == [(None, "m"), ("a", "a")]


def test_a_sibling_that_is_no_readable_file_is_passed_over(tmp_path: Path) -> None:
    main = write(
        tmp_path,
        {
            "Pfyfile.pf": "task m\nend\n",
            "Pfyfile.ok.pf": "task t\nend\n",
            "x/t.pf": "task u\nend\n",
        },
    )
    (tmp_path / "Pfyfile.dir.pf").mkdir()
    (tmp_path / "Pfyfile.loop.pf").symlink_to(tmp_path / "Pfyfile.loop.pf")
    (tmp_path / "Pfyfile.gone.pf").symlink_to(tmp_path / "nowhere.pf")
    (tmp_path / "Pfyfile.link.pf").symlink_to(tmp_path / "x" / "t.pf")
    pf = parse_file(main)
    assert pf.groups == ("link", "ok")
    assert not pf.errors


def test_files_are_read_as_text_mode_reads_them(tmp_path: Path) -> None:
    # A BOM, CRLF and a lone CR: the positions are those of the text open() returns.
    main = tmp_path / "Pfyfile.pf"
    main.write_bytes(b"\xef\xbb\xbftask a\r\n  describe x\r  shell echo \xc3\xa9\r\nend\r\n")
    with open(main, encoding="utf-8-sig") as handle:
        expected = parse_text(handle.read(), main)
    got = parse_file(main)
    assert dump(got) == dump(expected)
    assert got.tasks[None, "a"].body[0].span.line == 3
    assert got.tasks[None, "a"].describe == "x"


def test_a_file_that_is_not_utf8_is_a_read_error_at_its_include(tmp_path: Path) -> None:
    main = write(tmp_path, {"Pfyfile.pf": "task a\nend\ninclude bad.pf\n"})
    (tmp_path / "bad.pf").write_bytes(b"task b\nend\n\xff\n")
    with pytest.raises(DslError) as caught:
        parse_file(main)
    err = caught.value
    assert err.kind == "read-error" and err.span is not None and err.span.line == 3
    assert "bad.pf" in err.message and "utf-8" in err.message and "position 11" in err.message
