"""Languages are part of the Pfyfile language: an unknown one is a parse error; a BOM is no text."""

from __future__ import annotations

from pathlib import Path

import pytest

from pf.dsl import DslError, parse_file, parse_text, render
from pf.dsl.verbs import LANGUAGE_NAMES, LANGUAGES
from pf.tasks import polyglot
from tests.e2e.conftest import Project

_KNOWN = (
    "the languages are bash, sh, python, node, perl, ruby, c, cpp, rust, fortran, go"
    " (PFYFILE.md lists their aliases), and `default` for bash"
)

# (id, text, line, col, width, message, hint): where the caret goes and what it says.
UNKNOWN = [
    (
        "shell_lang",
        "task t\n  shell echo ran\n  shell_lang pyhton\n  shell print(1)\nend\n",
        3,
        14,
        6,
        "unknown language `pyhton`",
        "did you mean `python`?",
    ),
    (
        "shell_lang-as-written",
        "task t\n  shell_lang Pyhton\nend\n",
        2,
        14,
        6,
        "unknown language `Pyhton`",
        "did you mean `python`?",
    ),
    (
        "shell_lang-quoted",
        'task t\n  shell_lang "rusty"\nend\n',
        2,
        14,
        7,
        "unknown language `rusty`",
        "did you mean `rust`?",
    ),
    (
        "shell_lang-no-close-name",
        "task t\n  shell_lang cobol\nend\n",
        2,
        14,
        5,
        "unknown language `cobol`",
        _KNOWN,
    ),
    (
        "shell_lang-default-typo",
        "task t\n  shell_lang defualt\nend\n",
        2,
        14,
        7,
        "unknown language `defualt`",
        "did you mean `default`?",
    ),
    (
        "one-liner",
        "task t\n  shell [lang:pyhton] print(1)\nend\n",
        2,
        15,
        6,
        "unknown language `pyhton`",
        "did you mean `python`?",
    ),
    (
        "one-liner-blanks-and-case",
        "task t\n  shell [LANG:  Pyhton ] print(1)\nend\n",
        2,
        17,
        6,
        "unknown language `Pyhton`",
        "did you mean `python`?",
    ),
    (
        "heredoc",
        "task t\n  shell [lang:pyhton] << EOF\n    print(1)\n  EOF\nend\n",
        2,
        15,
        6,
        "unknown language `pyhton`",
        "did you mean `python`?",
    ),
    (
        "heredoc-never-closed",  # the tag is read before the body is looked for
        "task t\n  shell [lang:cobol] << EOF\n    x\n",
        2,
        15,
        5,
        "unknown language `cobol`",
        _KNOWN,
    ),
    (
        "file",
        "task t\n  shell [lang:pyhton] @x.py -- a\nend\n",
        2,
        15,
        6,
        "unknown language `pyhton`",
        "did you mean `python`?",
    ),
    (
        "continued-line",
        "task t\n  shell_lang \\\n    pyhton\nend\n",
        3,
        5,
        6,
        "unknown language `pyhton`",
        "did you mean `python`?",
    ),
    (
        "nested-block",
        "task t\n  if $x\n    shell [lang:rby] puts 1\n  end\nend\n",
        3,
        17,
        3,
        "unknown language `rby`",
        "did you mean `rb`?",
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "col", "width", "message", "hint"),
    [pytest.param(*case[1:], id=case[0]) for case in UNKNOWN],
)
def test_unknown_language_is_a_parse_error(
    text: str, line: int, col: int, width: int, message: str, hint: str
) -> None:
    with pytest.raises(DslError) as caught:
        parse_text(text)
    error = caught.value
    assert error.kind == "unknown-language"
    assert error.span is not None
    assert (error.span.line, error.span.col, error.span.length) == (line, col, width)
    assert (error.message, error.hint) == (message, hint)
    assert error.exit_code == 2


def test_an_empty_language_is_a_missing_one() -> None:
    with pytest.raises(DslError) as caught:
        parse_text('task t\n  shell_lang ""\nend\n')
    assert caught.value.kind == "missing-argument"
    assert caught.value.message == "`shell_lang` needs a language"


def test_the_caret_sits_under_the_language_word() -> None:
    with pytest.raises(DslError) as caught:
        parse_text("task t\n  shell [lang:pyhton] print(1)\nend\n", "Pfyfile.pf")
    assert render(caught.value, colour=False) == (
        "error: unknown language `pyhton`\n"
        " --> Pfyfile.pf:2:15\n"
        "  |\n"
        "2 |   shell [lang:pyhton] print(1)\n"
        "  |               ^^^^^^\n"
        "  = hint: did you mean `python`?"
    )


@pytest.mark.parametrize(
    "statement",
    [
        "shell_lang default",
        "shell_lang DEFAULT",
        "shell [lang:default] echo hi",
        "shell [lang:PY] print(1)",
        "shell_lang c++",
        "shell [lang:golang] @main.go -- a",
        "shell [lang:node] << EOF\n    console.log(1)\n  EOF",
        # The language of a bare @file comes from its suffix when it runs.
        "shell @x.unknownext",
    ],
)
def test_known_languages_and_default_parse(statement: str) -> None:
    (task,) = parse_text(f"task t\n  {statement}\nend\n").tasks.values()
    assert len(task.body) == 1


def test_every_name_and_alias_is_accepted() -> None:
    for name in sorted(LANGUAGE_NAMES):
        parse_text(f"task t\n  shell_lang {name}\n  shell [lang:{name}] x\nend\n")


def test_the_dsl_and_polyglot_know_the_same_languages() -> None:
    assert [lang.name for lang in polyglot.LANGUAGES] == list(LANGUAGES)
    assert {lang.name: lang.aliases for lang in polyglot.LANGUAGES} == LANGUAGES
    # Every word the parser lets through, the runner can run (or, `default`, leaves to bash).
    for name in LANGUAGE_NAMES - {"default"}:
        assert polyglot.language(name).name in LANGUAGES
    assert polyglot.is_default("default")


# ------------------------------------------------------------------------- BOM

BOM = "\ufeff"


def test_a_leading_bom_in_text_is_ignored() -> None:
    pfyfile = parse_text(BOM + "task t\n  shell echo bom\nend\n")
    (task,) = pfyfile.tasks.values()
    assert task.name == "t"
    assert (task.span.line, task.span.col) == (1, 1)


def test_a_leading_bom_on_disk_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "Pfyfile.pf"
    path.write_bytes(b"\xef\xbb\xbftask t\n  shell echo bom\nend\n")
    (task,) = parse_file(path).tasks.values()
    assert task.name == "t"
    assert (task.span.line, task.span.col) == (1, 1)


def test_an_included_file_may_start_with_a_bom(tmp_path: Path) -> None:
    (tmp_path / "more.pf").write_bytes(b"\xef\xbb\xbftask more\n  shell echo more\nend\n")
    (tmp_path / "Pfyfile.pf").write_text("include more.pf\n")
    assert [key for key in parse_file(tmp_path / "Pfyfile.pf").tasks] == [(None, "more")]


def test_only_a_leading_bom_is_dropped() -> None:
    with pytest.raises(DslError) as caught:
        parse_text("task t\n  shell echo\nend\n" + BOM + "task u\nend\n")
    assert caught.value.kind == "unknown-statement"
    assert caught.value.span is not None
    assert (caught.value.span.line, caught.value.span.col) == (4, 1)


@pytest.mark.parametrize("from_disk", [False, True], ids=["text", "disk"])
def test_an_error_on_the_first_line_after_a_bom_has_the_right_column(
    tmp_path: Path, from_disk: bool
) -> None:
    text = BOM + "task t x=[1\nend\n"
    path = tmp_path / "Pfyfile.pf"
    with pytest.raises(DslError) as caught:
        if from_disk:
            path.write_text(text, encoding="utf-8")
            parse_file(path, siblings=False)
        else:
            parse_text(text, path)
    error = caught.value
    assert error.kind == "unterminated-list"
    assert error.span is not None
    assert (error.span.line, error.span.col) == (1, 10)
    assert render(error, colour=False).splitlines()[3] == "1 | task t x=[1"


# ------------------------------------------------------------------- end to end


def test_pf_runs_nothing_of_a_task_with_an_unknown_language(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.pfyfile(
        """
        task t
          shell echo SIDE-EFFECT-RAN
          shell_lang pyhton
          shell print(1)
        end
        """
    )
    done = project.run("t")
    assert done.returncode == 2
    assert "SIDE-EFFECT-RAN" not in done.stdout
    assert "Pfyfile.pf:3:14" in done.stderr
    assert "unknown language `pyhton`" in done.stderr
    assert "did you mean `python`?" in done.stderr
    listed = project.run("list")
    assert listed.returncode == 2
    assert "Pfyfile.pf:3:14" in listed.stderr
