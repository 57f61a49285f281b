"""Which machines a task runs on: the original pf's host parameters, read into :class:`Host`.

``hosts=user@h1:22,h2`` (or ``--hosts``), ``host=h``, ``user=`` and ``port=`` (for the
hosts that name none), and ``env=NAME`` for a list declared ``hosts NAME = ...`` in the
Pfyfile. ``@local`` (and ``localhost``) is this machine. A task that declares one of
these parameters itself keeps it as its own. Imports only pf.dsl and pf.errors.
"""

from __future__ import annotations

from pf.errors import UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

    from pf.dsl.model import Pfyfile, Task

#: The parameters that choose hosts, and those that complete a host's address.
HOST_PARAMS = ("hosts", "host", "env")
ADDRESS_PARAMS = ("user", "port")
LOCAL_HOSTS = frozenset({"@local", "local", "localhost"})


class Host:
    """One remote machine: ``name``, and the ``user`` and ``port`` to log in with (None:
    what ``~/.ssh/config`` and SSH choose)."""

    __slots__ = ("name", "port", "user")

    def __init__(self, name: str, user: str | None = None, port: int | None = None) -> None:
        self.name = name
        self.user = user
        self.port = port

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Host) and self.label == other.label

    def __hash__(self) -> int:
        return hash(self.label)

    def __repr__(self) -> str:
        return f"Host({self.label!r})"

    @property
    def label(self) -> str:
        """``user@name:port`` as far as given: what output lines are prefixed with."""
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"{user}{self.name}{port}"


def _port(text: str, where: str) -> int:
    if text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    raise UsageError(f"{where}: `{text}` is not a port number", hint="a port is 1 to 65535")


def parse_host(text: str, user: str | None = None, port: int | None = None) -> Host:
    """``[user@]name[:port]``; ``user``/``port`` fill in what the text leaves out."""
    spec = text.strip()
    login, at, address = spec.rpartition("@")
    name, colon, given = address.rpartition(":") if ":" in address else (address, "", "")
    if not name or (at and not login) or any(c.isspace() for c in spec):
        raise UsageError(
            f"cannot read the host `{text}`", hint="write `user@host:22`, `host:22` or `host`"
        )
    who = login or user
    # ssh and rsync read a word that starts with '-' as an option (-oProxyCommand=...
    # runs a command); no host or user name starts with one.
    for what, word in (("host", name), ("user", who)):
        if word and word.startswith("-"):
            raise UsageError(
                f"cannot read the host `{text}`: its {what} name starts with '-'",
                hint="host and user names start with a letter or a digit",
            )
    return Host(name, who, _port(given, spec) if colon else port)


def hosts_for(pfyfile: Pfyfile, task: Task, params: Mapping[str, str]) -> list[Host] | None:
    """The remote hosts ``params`` send ``task`` to, or None to run it here.

    Raises UsageError for an address pf cannot read, and for ``@local`` beside remote
    hosts (a task runs either here or over SSH).
    """
    declared = {p.name for p in task.params}
    given = {k: v for k, v in params.items() if k not in declared}
    names: list[str] = []
    if "hosts" in given:
        names += [h for h in given["hosts"].replace(" ", ",").split(",") if h]
    if "host" in given:
        names.append(given["host"])
    listed = given.get("env")
    if listed is not None and listed in pfyfile.hosts:
        names += pfyfile.hosts[listed]
    remote = [h for h in names if h.strip() not in LOCAL_HOSTS]
    if not remote:
        return None
    if len(remote) < len(names):
        raise UsageError(
            "a task runs either on this machine or on remote hosts, not both",
            hint="drop @local from the host list, or run the task twice",
        )
    user = given.get("user") or None
    port = _port(given["port"], f"port={given['port']}") if given.get("port") else None
    out: list[Host] = []
    for name in remote:
        host = parse_host(name, user, port)
        if host not in out:
            out.append(host)
    return out
