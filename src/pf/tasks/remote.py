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
    from collections.abc import Callable, Mapping
    from types import ModuleType

    import asyncssh

    from pf.tasks.hosts import Host

    OnLine = Callable[[str, str], None]  # (stream, text)

#: The exit code of a remote command that ended without one (killed, lost connection).
NO_EXIT_STATUS = 255


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


class Session:
    """One logged-in SSH connection to ``host``; :meth:`run` a command, :meth:`close` it.

    >>> session = Session(Host("web1", "deploy", 22), timeout=10)
    >>> session.run("uname -s", {}, None, lambda stream, text: print(text))
    0
    """

    def __init__(self, host: Host, timeout: float) -> None:
        self.host = host
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
        """Run ``command`` (bash) with ``values`` exported; its exit code."""
        return self._loop.run_until_complete(self._run(script(command, values, sudo), on_line))

    async def _run(self, text: str, on_line: OnLine) -> int:
        ssh = _asyncssh()
        try:
            process = await self._conn.create_process(text)

            async def pump(reader: asyncssh.SSHReader[str], stream: str) -> None:
                async for line in reader:
                    if line:  # "" is the end of the stream, not an empty line
                        on_line(stream, line.rstrip("\n"))

            await asyncio.gather(pump(process.stdout, "stdout"), pump(process.stderr, "stderr"))
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
