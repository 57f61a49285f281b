"""Property: any text either parses or raises DslError at a position inside the text."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pf.dsl import DslError, parse_text, render

VALID = """\
# header
env ROOT=/srv NAME="pf demo"
hosts prod = u@h:22, h2
task build-c opt_level="3" target="wasm" [alias bc|alias=buildc]
  describe Build the C demo
  needs setup
  sources src/*.c
  generates out/*.o
  env CC=clang CFLAGS="-O${opt_level}"
  shell mkdir -p out && $CC $CFLAGS -c src/main.c \\
      -o out/main.o
  shell_lang python
  shell [lang:python] << EOF
    print("hi")
  EOF
  if $target == "wasm"
    compile src/*.c target=wasm out=web opt_level=$opt_level
  else
    make all jobs=4
  end
  for t in ["a", 'b c']
    sync src=a dest=b excludes=["*.log"] delete
  end
end
task setup
  shell echo 'set up'
end
"""

PIECES = [
    "task",
    "end",
    "else",
    "if",
    "for",
    "in",
    "shell",
    "shell_lang",
    "env",
    "needs",
    "include",
    "hosts",
    "describe",
    "make",
    "cargo",
    "sync",
    "compile",
    "[lang:py]",
    "<< EOF",
    "EOF",
    "@f.py",
    "--",
    "=",
    "==",
    "!=",
    "$x",
    "${x:-d}",
    "`ls`",
    "[",
    "]",
    "|",
    "alias",
    '"',
    "'",
    "\\",
    "\\\n",
    "\n",
    "\r\n",
    "\t",
    " ",
    "  ",
    "#",
    "x",
    "a=b",
    "é",
    "\x0c",
    "\u2028",
    "\x00",
]


def check(text: str) -> None:
    try:
        parse_text(text, "/nonexistent/Pfyfile.pf")
    except DslError as error:
        assert error.span is not None
        physical = text.split("\n")
        assert 1 <= error.span.line <= len(physical)
        assert 1 <= error.span.col <= len(physical[error.span.line - 1]) + 1
        assert error.span.length >= 0
        assert 0 <= error.span.offset <= len(text)
        assert text[error.span.offset - error.span.col + 1 :].startswith(
            physical[error.span.line - 1]
        )
        render(error)
        render(error, colour=True)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text(text: str) -> None:
    check(text)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), max_size=60).map("".join))
def test_arbitrary_token_soup(text: str) -> None:
    check(text)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    text = VALID
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.sampled_from(PIECES) | st.text(max_size=3))
        if action == "insert":
            text = text[:at] + piece + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 8)) :]
        else:
            text = text[:at] + piece + text[at + len(piece) :]
    return text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_of_a_valid_pfyfile(text: str) -> None:
    check(text)


def test_the_valid_pfyfile_parses() -> None:
    pf = parse_text(VALID, "/nonexistent/Pfyfile.pf")
    assert set(pf.tasks) == {(None, "build-c"), (None, "setup")}


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["include ", "task a\n  shell ", "task a ", "hosts ", "env "]), st.text())
def test_arbitrary_rest_of_line(verb: str, rest: str) -> None:
    # Paths with NUL bytes, odd quotes and blanks reach the file system layer too.
    check(verb + rest + "\nend\n")
