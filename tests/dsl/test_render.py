"""Rendering golden tests: the exact text just-style error blocks show."""

from __future__ import annotations

import pytest

from pf.dsl import DslError, parse_text, render


def rendered(text: str, colour: bool = False) -> str:
    with pytest.raises(DslError) as caught:
        parse_text(text, "Pfyfile.pf")
    return render(caught.value, colour)


def test_unknown_statement() -> None:
    assert rendered("tsk a\nend\n") == (
        "error: expected `task`, `include`, `env` or `hosts`, found `tsk`\n"
        " --> Pfyfile.pf:1:1\n"
        "  |\n"
        "1 | tsk a\n"
        "  | ^^^\n"
        "  = hint: did you mean `task`?"
    )


def test_tabs_are_expanded_under_the_caret() -> None:
    assert rendered("task a\n\tmake\tjobs=1 jobs=2\nend\n") == (
        "error: `jobs` is given twice\n"
        " --> Pfyfile.pf:2:14\n"
        "  |\n"
        "2 |     make    jobs=1 jobs=2\n"
        "  |                    ^^^^^^\n"
        "note: first given here\n"
        " --> Pfyfile.pf:2:7\n"
        "  |\n"
        "2 |     make    jobs=1 jobs=2\n"
        "  |             ^^^^^^"
    )


def test_missing_end_with_related_span_and_wide_gutter() -> None:
    text = "\n" * 9 + "task a\n  shell x\ntask b\nend\n"
    assert rendered(text) == (
        "error: `task a` is never closed\n"
        "  --> Pfyfile.pf:10:1\n"
        "   |\n"
        "10 | task a\n"
        "   | ^^^^\n"
        "note: `task` starts here before the `end`\n"
        "  --> Pfyfile.pf:12:1\n"
        "   |\n"
        "12 | task b\n"
        "   | ^^^^\n"
        "   = hint: add a line `end` to close this `task a`"
    )


def test_zero_width_span_gets_one_caret() -> None:
    assert rendered("task a\n  copy x\nend\n") == (
        "error: `copy` needs a source and a destination\n"
        " --> Pfyfile.pf:2:9\n"
        "  |\n"
        "2 |   copy x\n"
        "  |         ^\n"
        "  = hint: write `copy SRC DST [mode= user= group=]`"
    )


def test_continued_line_points_at_the_physical_line() -> None:
    assert rendered("task a\n  make a \\\n     b=[x\nend\n") == (
        "error: unterminated list: this `[` is never closed\n"
        " --> Pfyfile.pf:3:8\n"
        "  |\n"
        "3 |      b=[x\n"
        "  |        ^\n"
        "  = hint: close it with `]`"
    )


def test_colour() -> None:
    out = rendered("tsk a\n", colour=True)
    assert out.startswith("\x1b[1;31merror\x1b[0m\x1b[1m: expected `task`, `include`")
    assert "\x1b[1;31m^^^\x1b[0m" in out


def test_error_without_span(tmp_path: object) -> None:
    error = DslError(None, "read-error", {"path": "x.pf", "reason": "no such file"})
    assert render(error) == "error: cannot read `x.pf`: no such file"
    assert str(error) == "cannot read `x.pf`: no such file"


def test_str_and_dict_carry_the_position() -> None:
    with pytest.raises(DslError) as caught:
        parse_text("task a\nend\nnend\n", "P.pf")
    error = caught.value
    assert str(error) == "P.pf:3:1: expected `task`, `include`, `env` or `hosts`, found `nend`"
    assert error.to_dict() == {
        "code": "pfyfile-error",
        "kind": "unknown-statement",
        "message": "expected `task`, `include`, `env` or `hosts`, found `nend`",
        "hint": "did you mean `env`?",
        "span": {"file": "P.pf", "line": 3, "col": 1, "length": 4},
    }
