"""Host parameters -> hosts: the original's forms, and what is refused before anything runs."""

from __future__ import annotations

import pytest

from pf.dsl import parse_text
from pf.errors import UsageError
from pf.tasks.hosts import hosts_for, parse_host
from pf.tasks.remote import script

PF = parse_text("hosts prod = deploy@web1:2222, web2\ntask t\nend\ntask own host\nend\n")


@pytest.mark.parametrize(
    ("params", "labels"),
    [
        ({}, None),
        ({"hosts": "@local"}, None),
        ({"host": "localhost"}, None),
        ({"hosts": "a@h1:22,h2"}, ["a@h1:22", "h2"]),
        ({"hosts": "h1, h2 ,h1"}, ["h1", "h2"]),
        ({"host": "h", "user": "u", "port": "2200"}, ["u@h:2200"]),
        ({"hosts": "x@h:1,h2", "user": "u", "port": "9"}, ["x@h:1", "u@h2:9"]),
        ({"env": "prod"}, ["deploy@web1:2222", "web2"]),
        ({"env": "staging"}, None),  # not a host list: a variable like any other
    ],
)
def test_hosts_for(params: dict[str, str], labels: list[str] | None) -> None:
    found = hosts_for(PF, PF.tasks[None, "t"], params)
    assert (None if found is None else [h.label for h in found]) == labels


def test_a_task_declaring_host_keeps_it() -> None:
    assert hosts_for(PF, PF.tasks[None, "own"], {"host": "elsewhere"}) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("h:http", "h:http: `http` is not a port number"),
        ("h:0", "h:0: `0` is not a port number"),
        ("@h", "cannot read the host `@h`"),
        ("a b", "cannot read the host `a b`"),
        (":22", "cannot read the host `:22`"),
        (
            "-oProxyCommand=id",
            "cannot read the host `-oProxyCommand=id`: its host name starts with '-'",
        ),
        (
            "-oProxyCommand=id@h:22",
            "cannot read the host `-oProxyCommand=id@h:22`: its user name starts with '-'",
        ),
    ],
)
def test_unreadable_hosts(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_host(text)
    assert info.value.message == message


def test_the_remote_script_exports_values_and_quotes_them() -> None:
    assert script("echo $a", {"a": "x y", "b-c": "no"}, None) == (
        "bash -c 'export a='\"'\"'x y'\"'\"'; echo $a'"
    )
    assert script("id", {}, ("-u", "www")).startswith("sudo -E -u www -- bash -c ")
