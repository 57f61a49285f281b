"""What a task run shows while it runs: echoed commands, live output lines, skips.

Imports nothing of pf: the CLI subclasses :class:`Reporter` to paint, pf serve to
record, and the executor writes through it from as many threads as run tasks.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from typing import TextIO

#: Lines of a heredoc echoed before the rest is summarised.
ECHO_LINES = 4


def echo_lines(command: str) -> list[str]:
    """How ``command`` is shown before it runs: ``$ first line``, then ``> `` continuations."""
    lines = command.rstrip("\n").split("\n")
    shown = [f"$ {lines[0]}"] + [f"> {line}" for line in lines[1:ECHO_LINES]]
    if len(lines) > ECHO_LINES:
        shown.append(f"> ... ({len(lines) - ECHO_LINES} more lines)")
    return shown


class Reporter:
    """Where the executor's output goes: echoed commands, live output lines, skips.

    Thread-safe: each line is written whole and flushed at once, so output is live
    and tasks running in parallel never cut into each other's lines. With ``prefix``
    (several tasks at once) every line starts with ``[task]``. The CLI subclasses it
    to add colour through :meth:`paint`.
    """

    def __init__(self, prefix: bool = False, attach: bool = False) -> None:
        import threading  # cheap, and only this object needs a lock at start-up

        self.prefix = prefix
        # Commands write to pf's own stdout/stderr and read its stdin, as make and just
        # run them (the CLI, one task at a time): :meth:`line` then sees only pf's own.
        self.attach = attach
        self._lock = threading.Lock()

    def paint(self, text: str, colour: str, stream: TextIO) -> str:
        """``text`` in ``colour`` when ``stream`` is a terminal; plain here."""
        return text

    def _write(self, stream: TextIO, task: str, text: str) -> None:
        head = f"[{task}] " if self.prefix else ""
        with self._lock:
            stream.write(f"{head}{text}\n")
            stream.flush()

    def echo(self, task: str, command: str) -> None:
        """Show ``command`` before it runs: ``$ command`` on stderr, continuation lines ``>``."""
        err = sys.stderr
        for line in echo_lines(command):
            self._write(err, task, self.paint(line, "cmd", err))

    def line(self, task: str, stream: str, text: str) -> None:
        """One line of a command's output, as it arrives."""
        self._write(sys.stderr if stream == "stderr" else sys.stdout, task, text)

    def skipped(self, task: str) -> None:
        err = sys.stderr
        self._write(err, task, self.paint(f"pf: `{task}` is up to date", "skip", err))
