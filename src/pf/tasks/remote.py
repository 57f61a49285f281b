"""A task's commands on a remote host, over one SSH connection (asyncssh).

Owns the connection and its errors: :class:`Session` logs in once, as ``ssh`` would
(``~/.ssh/config``, the agent and ``~/.ssh/known_hosts`` are asyncssh's defaults, so
an unknown host key is refused), runs each command through the remote login shell
with the task's own values exported first, and hands its output over line by line.
Every asyncssh and socket error becomes a one-line :class:`RemoteError` naming the
host; nothing of asyncssh leaves this module. A session lives on an event loop of its
own, in the thread that runs the task on that host (the executor runs hosts side by
side on threads), so the rest of pf stays synchronous.

asyncssh is imported when the first session opens: local tasks never pay for it.
"""

from __future__ import annotations

import asyncio
import shlex

from pf.errors import PfError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import threading
    from collections.abc import Callable, Mapping
    from types import ModuleType

    import asyncssh

    from pf.tasks.hosts import Host

    OnLine = Callable[[str, str], None]  # (stream, text)

#: The exit code of a remote command that ended without one (killed, lost connection).
NO_EXIT_STATUS = 255

# How often a running remote command checks whether its run was cancelled (as the
# sandbox does for local ones), and how long it is then given to end before its
# channel is closed: the tether's TERM, its KILL 5 s later, and the news of the exit.
_CANCEL_POLL = 0.05
_CANCEL_GRACE = 10.0

# Runs the command ($1) so that it ends with the SSH session. sshd gives a command no
# terminal to hang up, and OpenSSH refuses a `signal` request for a root login ("session
# signalling requires privilege separation", 9.2): a command outlives its session. (A
# terminal would merge stdout into stderr and make commands interactive.) So it gets
# a process group of its own (`set -m`) and /dev/null for input, while a watcher
# reads the session's input, which pf never writes: at its end (pf closed it on a
# cancel, or the connection is gone: pf was interrupted, killed, or lost the network)
# the watcher kills that group, and 5 s later sends KILL to what ignored the TERM (the
# watcher then outlives the command: ending it no longer stops it). The command's exit
# status is the session's; bash's own word on how it was killed is not output.
_TETHER = (
    'set -m; bash -c "$1" </dev/null & job=$!; set +m; '
    "{ while read -r _; do :; done; trap '' TERM; "
    'kill -TERM -- "-$job" && sleep 5 && kill -KILL -- "-$job"; } <&0 >/dev/null 2>&1 & '
    'watch=$!; wait "$job" 2>/dev/null; code=$?; kill "$watch" 2>/dev/null; exit "$code"'
)


def _asyncssh() -> ModuleType:
    # asyncssh still imports cryptography's DSA classes, whose deprecation warning would
    # otherwise be printed into the task's output.
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="DSA is deprecated")
        import asyncssh
    return asyncssh


class RemoteError(PfError):
    """A host could not be reached, refused the login, or its key is not known."""

    code = "remote-error"
    exit_code = 1


def script(command: str, values: Mapping[str, str], sudo: tuple[str, ...] | None) -> str:
    """The text the remote shell runs: the task's values exported, then ``command`` in bash.

    ``sudo`` (``sudo=true [sudo_user=U]``) runs the bash through ``sudo -E``.
    """
    exports = "".join(
        f"export {name}={shlex.quote(value)}; "
        for name, value in values.items()
        if name.isidentifier()
    )
    body = f"{exports}{command}"
    bash = f"bash -c {shlex.quote(body)}"
    if sudo is None:
        return bash
    return shlex.join(["sudo", "-E", *sudo, "--"]) + " " + bash


def tethered(text: str) -> str:
    """``text`` (a :func:`script`) run so that it is killed when its SSH session ends."""
    return f"bash -c {shlex.quote(_TETHER)} pf {shlex.quote(text)}"


class Session:
    """One logged-in SSH connection to ``host``; :meth:`run` a command, :meth:`close` it.

    >>> session = Session(Host("web1", "deploy", 22), timeout=10)
    >>> session.run("uname -s", {}, None, lambda stream, text: print(text))
    0
    """

    def __init__(self, host: Host, timeout: float, cancel: threading.Event | None = None) -> None:
        self.host = host
        # Set (pf serve's cancel of a task run): the running command is killed.
        self._cancel = cancel
        self._loop = asyncio.new_event_loop()
        try:
            self._conn: asyncssh.SSHClientConnection = self._loop.run_until_complete(
                self._connect(timeout)
            )
        except BaseException:
            self._loop.close()
            raise

    async def _connect(self, timeout: float) -> asyncssh.SSHClientConnection:
        ssh = _asyncssh()
        host = self.host
        options: dict[str, object] = {"connect_timeout": timeout}
        if host.user is not None:
            options["username"] = host.user
        if host.port is not None:
            options["port"] = host.port
        try:
            connection: asyncssh.SSHClientConnection = await ssh.connect(host.name, **options)
            return connection
        except ssh.HostKeyNotVerifiable as exc:
            port = host.port or 22
            raise RemoteError(
                f"{host.label}: the host key is not in ~/.ssh/known_hosts ({exc.reason})",
                hint=f"check the key, then accept it: ssh-keyscan -p {port} {host.name} "
                ">> ~/.ssh/known_hosts",
            ) from exc
        except ssh.PermissionDenied as exc:
            raise RemoteError(
                f"{host.label}: login refused ({exc.reason})",
                hint="check the user, and that your key is in the host's authorized_keys",
            ) from exc
        except (TimeoutError, OSError, ssh.Error) as exc:
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, asyncio.TimeoutError):
                reason = f"no answer within {timeout:g} s (PF_SSH_CONNECT_TIMEOUT)"
            raise RemoteError(f"{host.label}: cannot connect: {reason}") from exc

    def run(
        self,
        command: str,
        values: Mapping[str, str],
        sudo: tuple[str, ...] | None,
        on_line: OnLine,
    ) -> int:
        """Run ``command`` (bash) with ``values`` exported; its exit code.

        A cancel kills the command (and what it started) on the host; the code is
        then its signal's, 128+N, as for a local command.
        """
        text = tethered(script(command, values, sudo))
        return self._loop.run_until_complete(self._run(text, on_line))

    async def _run(self, text: str, on_line: OnLine) -> int:
        ssh = _asyncssh()
        try:
            process = await self._conn.create_process(text)

            async def pump(reader: asyncssh.SSHReader[str], stream: str) -> None:
                async for line in reader:
                    if line:  # "" is the end of the stream, not an empty line
                        on_line(stream, line.rstrip("\n"))

            output = asyncio.gather(pump(process.stdout, "stdout"), pump(process.stderr, "stderr"))
            cancel = self._cancel
            if cancel is not None:
                while not output.done() and not cancel.is_set():
                    await asyncio.wait((output,), timeout=_CANCEL_POLL)
                if not output.done():
                    process.stdin.write_eof()  # the tether kills the command
                    await asyncio.wait((output,), timeout=_CANCEL_GRACE)
                    if not output.done():
                        output.cancel()
                        process.close()
                        return NO_EXIT_STATUS
            await output
            done = await process.wait()
        except (OSError, ssh.Error) as exc:
            raise RemoteError(f"{self.host.label}: the connection failed: {exc}") from exc
        return done.exit_status if done.exit_status is not None else NO_EXIT_STATUS

    def close(self) -> None:
        try:
            self._conn.close()
            self._loop.run_until_complete(self._conn.wait_closed())
        finally:
            self._loop.close()
