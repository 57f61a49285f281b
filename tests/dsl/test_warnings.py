"""What the original pf tolerated: text -> (line, col, width, kind) of each warning."""

from __future__ import annotations

import pytest

from pf.dsl import DslError, DslWarning, Shell, parse_text, render

# (id, text, [(line, col, width, kind)], tasks loaded): each warning's caret, in order.
WARNINGS = [
    ("no-end-at-eof", "task a\n  shell x\n", [(1, 1, 4, "missing-end-at-eof")], ["a"]),
    (
        "no-end-after-block",
        "task a\n  for x in [a]\n    shell x\n  end\n",
        [(1, 1, 4, "missing-end-at-eof")],
        ["a"],
    ),
    ("shell-outside", "shell echo\ntask a\nend\n", [(1, 1, 5, "ignored-outside-task")], ["a"]),
    (
        "env-like-verbs-outside",
        "make all\ndescribe x\ntask a\nend\n",
        [(1, 1, 4, "ignored-outside-task"), (2, 1, 8, "ignored-outside-task")],
        ["a"],
    ),
    (
        "shell-block-outside",
        "shell |\n  task x\n  end\ntask a\nend\n",
        [(1, 1, 5, "ignored-outside-task")],
        ["a"],
    ),
    ("image", "image ubuntu:22.04\ntask a\nend\n", [(1, 1, 5, "ignored-statement")], ["a"]),
    ("alias-top", "[alias x]\ntask a\nend\n", [(1, 1, 9, "alias-outside-task")], ["a"]),
    (
        "redefined",
        "task a\nend\ntask b\nend\ntask  a\nend\n",
        [(5, 7, 1, "task-redefined")],
        ["b", "a"],
    ),
    (
        "hyphenated",
        'task a remote-addr="" b-c-d port=1\nend\n',
        [(1, 8, 14, "hyphenated-parameter"), (1, 23, 5, "hyphenated-parameter")],
        ["a"],
    ),
    (
        "bare-commands",
        "task a\n  npm install\n  if $x\n    ./run.sh --fast\n  end\nend\n",
        [(2, 3, 3, "bare-command"), (4, 5, 8, "bare-command")],
        ["a"],
    ),
    (
        "unsupported-helpers",
        "task a\n  containerize\n  autobuild_retry max_retries=5\nend\n",
        [(2, 3, 12, "unsupported-helper"), (3, 3, 15, "unsupported-helper")],
        ["a"],
    ),
    (
        "packages-without-action",
        "task a\n  packages git curl\n  packages install jq\nend\n",
        [(2, 12, 3, "packages-without-action")],
        ["a"],
    ),
    (
        "heredoc-outside",
        "shell cat << 'EOF' > f\ntask x\nEOF\ntask a\nend\n",
        [(1, 1, 5, "ignored-outside-task")],
        ["a"],
    ),
    (
        "comment-in-continuation",
        "task a\n  shell a \\\n  # b\n    c\nend\n",
        [(3, 3, 3, "comment-in-continuation")],
        ["a"],
    ),
    ("clean", "task a [alias b]\n  shell x\nend\n", [], ["a"]),
]


@pytest.mark.parametrize(
    ("text", "expected", "tasks"),
    [pytest.param(t, w, n, id=i) for i, t, w, n in WARNINGS],
)
def test_warning(text: str, expected: list[tuple[int, int, int, str]], tasks: list[str]) -> None:
    pf = parse_text(text)
    got = []
    for warning in pf.warnings:
        assert isinstance(warning, DslWarning)
        assert warning.span is not None
        got.append((warning.span.line, warning.span.col, warning.span.length, warning.kind))
    assert got == expected
    assert [name for _, name in pf.tasks] == tasks


@pytest.mark.parametrize(
    ("line", "bash_reads"),
    [
        ('echo "$remote-addr:$port"', 'echo "${remote_addr}:$port"'),
        ("echo ${remote-addr} ${remote-addr:-x}", "echo ${remote_addr} ${remote_addr:-x}"),
        ("echo $remote-address $remote-addr-x", "echo $remote-address ${remote_addr}-x"),
        ("echo $remote-addr-more", "echo ${remote_addr_more}"),
        ("echo $remote", "echo $remote"),
    ],
)
def test_shell_lines_read_hyphenated_parameters_by_their_sh_twin(
    line: str, bash_reads: str
) -> None:
    pf = parse_text(f"task a remote-addr remote-addr-more port\n  shell {line}\nend\n")
    [shell] = pf.tasks[None, "a"].body
    assert isinstance(shell, Shell)
    assert shell.code == bash_reads


def test_other_languages_keep_hyphenated_names_as_written() -> None:
    pf = parse_text("task a x-y\n  shell [lang:python] print('$x-y')\nend\n")
    [shell] = pf.tasks[None, "a"].body
    assert isinstance(shell, Shell)
    assert shell.code == "print('$x-y')"


def test_an_alias_line_in_a_task_adds_aliases() -> None:
    pf = parse_text("task a [alias b]\n  [alias c|alias=d]\n  shell x\nend\n")
    assert not pf.warnings
    assert pf.tasks[None, "a"].aliases == ("b", "c", "d")
    assert pf.find(None, "d") is pf.tasks[None, "a"]


def test_a_bad_alias_line_is_an_error() -> None:
    with pytest.raises(DslError) as caught:
        parse_text("task a\n  [alias]\nend\n")
    assert caught.value.kind == "invalid-alias"


def test_a_warning_renders_as_a_warning_with_both_positions() -> None:
    [warning] = parse_text("task a\nend\ntask a\nend\n").warnings
    assert render(warning) == "\n".join(
        [
            "warning: `a` is defined again in the main scope; this later definition is used",
            " --> Pfyfile.pf:3:6",
            "  |",
            "3 | task a",
            "  |      ^",
            "note: the earlier definition, now ignored",
            " --> Pfyfile.pf:1:6",
            "  |",
            "1 | task a",
            "  |      ^",
            "  = hint: rename one of them, or remove the one that is not meant",
        ]
    )
