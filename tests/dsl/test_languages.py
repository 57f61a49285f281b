"""Languages are part of the Pfyfile language: an unknown one loads with a warning and is an
error only where it runs; a BOM is no text."""

from __future__ import annotations

from pathlib import Path

import pytest

from pf.dsl import (
    DslError,
    If,
    Shell,
    ShellLang,
    Statement,
    Unrunnable,
    parse_file,
    parse_text,
    render,
)
from pf.dsl.verbs import LANGUAGE_NAMES, LANGUAGES
from pf.tasks import polyglot
from tests.e2e.conftest import Project

_KNOWN = (
    "the languages are bash, sh, dash, zsh, fish, ksh, tcsh, pwsh, python, node, deno,"
    " ts-node, perl, php, ruby, r, julia, haskell, ocaml, elixir, dart, lua, c, cpp, rust,"
    " fortran, go, asm, zig, nim, crystal, haskell-compile, ocamlc, java-openjdk,"
    " java-android, c-llvm, cpp-llvm, c-llvm-bc, cpp-llvm-bc, fortran-llvm"
    " (docs/pfyfile.md lists their aliases), and `default` for bash"
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
        "heredoc-body-skipped",
        "task t\n  shell [lang:cobol] << EOF\n    DISPLAY 'x'\n  EOF\nend\n",
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
def test_an_unknown_language_warns_at_load_and_its_lines_do_not_run(
    text: str, line: int, col: int, width: int, message: str, hint: str
) -> None:
    pf = parse_text(text)
    [warning] = pf.warnings
    assert warning.kind == "unknown-language"
    assert warning.span is not None
    assert (warning.span.line, warning.span.col, warning.span.length) == (line, col, width)
    assert (warning.message, warning.hint) == (message, hint)
    body = _flat(pf.tasks[None, "t"].body)
    # Every line in that language is kept to fail where it runs; bash lines stay.
    assert not [s for s in body if isinstance(s, Shell) and s.lang is not None]
    for shell in body:
        if isinstance(shell, Unrunnable):
            assert (shell.kind, shell.span) == ("unknown-language", warning.span)


def _flat(body: tuple[Statement, ...]) -> list[Statement]:
    out: list[Statement] = []
    for statement in body:
        out.append(statement)
        if isinstance(statement, If):
            out += _flat(statement.body) + _flat(statement.orelse)
    return out


def test_a_variable_language_is_left_to_the_run() -> None:
    pf = parse_text('task t lang="py" Kind\n  shell [lang:$lang] x\n  shell_lang ${Kind}\nend\n')
    assert not pf.warnings
    shell, shell_lang = pf.tasks[None, "t"].body
    assert isinstance(shell, Shell) and shell.lang == "$lang"
    assert isinstance(shell_lang, ShellLang) and shell_lang.lang == "${Kind}"


def test_an_empty_language_is_a_missing_one() -> None:
    with pytest.raises(DslError) as caught:
        parse_text('task t\n  shell_lang ""\nend\n')
    assert caught.value.kind == "missing-argument"
    assert caught.value.message == "`shell_lang` needs a language"


def test_the_caret_sits_under_the_language_word() -> None:
    [warning] = parse_text("task t\n  shell [lang:pyhton] print(1)\nend\n", "Pfyfile.pf").warnings
    assert render(warning, colour=False) == (
        "warning: unknown language `pyhton`\n"
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


def test_an_unknown_language_fails_the_run_at_its_line_and_lists_with_a_warning(
    tmp_path: Path,
) -> None:
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
    assert done.stdout == "SIDE-EFFECT-RAN\n"  # the lines before it run, as any failure
    assert done.stderr.splitlines()[1:3] == [
        "error: unknown language `pyhton`",
        " --> Pfyfile.pf:3:14",
    ]
    assert "did you mean `python`?" in done.stderr
    listed = project.run("list")
    assert listed.returncode == 0
    assert listed.stderr.splitlines()[:2] == [
        "warning: unknown language `pyhton`",
        " --> Pfyfile.pf:3:14",
    ]
