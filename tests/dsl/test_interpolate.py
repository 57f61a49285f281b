"""interpolate(): $name, ${name}, ${name:-default}, $$; unknown names are empty, like sh."""

from __future__ import annotations

import pytest

from pf.dsl import interpolate

VALUES = {"name": "world", "empty": "", "level": "3", "x_1": "X", "remote-addr": "h", "a-b-c": "C"}


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
        # A hyphenated parameter is read whole when it is one of the values, longest first.
        ("$remote-addr:22", "h:22"),
        ("${remote-addr}|${remote-addr:-x}", "h|h"),
        ("$remote-address", "-address"),
        ("$a-b-c $a-b-d", "C -b-d"),
        ("${a-b}", "${a-b}"),  # sh's `-` form, not a name: kept for bash
    ],
)
def test_interpolate(text: str, result: str) -> None:
    assert interpolate(text, VALUES) == result
