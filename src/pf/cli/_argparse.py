"""argparse for subcommands, raising UsageError instead of printing and exiting itself.

Kept out of ``cli.main``: argparse costs about 9 ms, which ``pf list`` and task runs,
parsed by hand, do not pay.
"""

from __future__ import annotations

import argparse

from pf.errors import UsageError


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting on its own."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, hint=f"run '{self.prog} --help' for usage")
