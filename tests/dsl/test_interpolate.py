"""interpolate(): $name, ${name}, ${name:-default}, $$; unknown names are empty, like sh."""

from __future__ import annotations

import pytest

from pf.dsl import interpolate

VALUES = {"name": "world", "empty": "", "level": "3", "x_1": "X"}


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("plain", "plain"),
        ("hello $name", "hello world"),
        ("hello ${name}!", "hello world!"),
        ("$name$name", "worldworld"),
        ("-O${level}", "-O3"),
        ("-O$level-fast", "-O3-fast"),  # sh names stop at `-`
        ("$x_1.$x_1", "X.X"),
        ("$unknown|", "|"),
        ("${unknown}|", "|"),
        ("${unknown:-dflt}", "dflt"),
        ("${empty:-dflt}", "dflt"),  # `:-` also replaces an empty value
        ("${name:-dflt}", "world"),
        ("${unknown:-$name}", "world"),  # the default is interpolated
        ("${unknown:-${level}x}", "3x"),
        ("$$name", "$name"),
        ("$$$name", "$world"),
        ("cost: 5$", "cost: 5$"),
        ("$ sign", "$ sign"),
        ("$1", "$1"),
        ("${x:+alt}", "${x:+alt}"),  # bash forms are kept for bash
        ("${name/a/b}", "${name/a/b}"),
        ("${", "${"),
        ("${name", "${name"),
        ("${}", "${}"),
        ("${1x}", "${1x}"),
        ("", ""),
    ],
)
def test_interpolate(text: str, result: str) -> None:
    assert interpolate(text, VALUES) == result
