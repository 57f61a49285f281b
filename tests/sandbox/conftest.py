"""Fixtures shared by the sandbox tests."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from pf.config import Settings, load_settings

# Forks until refused, printing how many it made and why it stopped. Python, not a shell
# loop: bash retries a refused fork with growing sleeps, so whether its message appears
# before the timeout would depend on the machine's load. Children close their output at
# once, so only the parent's report is read.
FORK_BOMB = """
import os, time
forked = 0
try:
    while forked < 200:
        if os.fork() == 0:
            os.close(1); os.close(2); time.sleep(3); os._exit(0)
        forked += 1
except OSError as refused:
    print(forked, refused.strerror)
"""

# Far above the uids a system hands out, so no other process runs as one of them.
_LONE_UID_BASE = 3_000_000


@pytest.fixture
def lone_settings() -> Settings:
    """Settings whose sandbox uid no other process uses (one per test process).

    RLIMIT_NPROC counts every process of a uid, so a limit tested under the usual
    sandbox uid would also count the cells and compiles of tests running beside it.
    """
    return replace(load_settings(), sandbox_uid=_LONE_UID_BASE + os.getpid())
