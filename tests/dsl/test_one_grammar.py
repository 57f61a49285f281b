"""One grammar: wherever the parser takes a shortcut for the usual line, the shortcut and
the general reading agree, on every line the shortcut accepts (Hypothesis over generated
Pfyfile lines). The shortcuts are kept for ``pf list``'s speed; these properties are what
makes them safe."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pf.dsl import DslError, Param, parse_text
from pf.dsl.lexer import Line, Reader, _word, words
from pf.dsl.parser import Parser, _simple_env, _simple_params
from pf.dsl.source import Source

NAMES = st.sampled_from(
    ["a", "opt_level", "x1", "_y", "remote-addr", "a-b-c", "1x", "-a", "a-", "a.b", "é", "A"]
) | st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,5}", fullmatch=True)
VALUES = st.sampled_from(
    ["", "1", '"2"', '"a b"', '"x"y', "v=w", '""', "'q'", "$x", '"', 'a"b"', "[1]", "a\\b", "\t"]
) | st.text(alphabet="ab=\"' -$[]\\\t", max_size=5)
WORDS = st.one_of(NAMES, st.tuples(NAMES, VALUES).map("=".join))
BLANKS = st.sampled_from([" ", "  ", " \t"])


@st.composite
def line_of(draw: st.DrawFn, head: str) -> str:
    parts = draw(st.lists(WORDS, max_size=5))
    out = head
    for part in parts:
        out += draw(BLANKS) + part
    return out + draw(st.sampled_from(["", " "]))


def _line(text: str) -> Line:
    reader = Reader(Source("P", text + "\n"))
    assert reader.advance() is not None
    return reader.line()


CHECKS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@CHECKS
@given(line_of("task t").filter(lambda text: not text.endswith("\\")))  # no continuation
def test_the_header_shortcut_reads_parameters_as_the_general_path(text: str) -> None:
    line = _line(text)
    name_end = line.rest + 1
    fast = _simple_params(line, name_end, len(line.text))
    if fast is None:
        return  # left to the general path, which reads (and reports) it
    found = words(line, line.rest, keys=True, lists=True)
    general = Parser(line.source)._params(line, found, [])
    assert fast == general
    # And the whole parse of the task agrees with both.
    task = parse_text(text + "\nend\n").tasks[None, "t"]
    assert _plain(task.params) == _plain(fast)


def _plain(params: tuple[Param, ...]) -> list[tuple[object, ...]]:
    return [(p.name, p.default, p.span.line, p.span.col, p.span.length) for p in params]


@CHECKS
@given(line_of("env").filter(lambda text: text.strip() != "env"))
def test_the_env_shortcut_reads_pairs_as_the_general_path(text: str) -> None:
    line = _line(text)
    fast = _simple_env(line.text, line.rest)
    if fast is None:
        return
    general = Parser(line.source)._env_words(line)
    assert fast == general.pairs


@CHECKS
@given(line_of("make"), st.booleans(), st.booleans())
def test_the_word_shortcut_cuts_words_as_the_scanner(text: str, keys: bool, lists: bool) -> None:
    line = _line(text)
    try:
        found = words(line, line.rest, keys=keys, lists=lists)
    except DslError:
        return  # an unterminated string or list: only the scanner reads those
    for word in found:
        scanned, end = _word(line, word.start, keys, lists)
        assert scanned == word
        assert end == word.end
