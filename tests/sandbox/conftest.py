"""Fixtures shared by the sandbox tests."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from pf.config import Settings, load_settings

# Far above the uids a system hands out, so no other process runs as one of them.
_LONE_UID_BASE = 3_000_000


@pytest.fixture
def lone_settings() -> Settings:
    """Settings whose sandbox uid no other process uses (one per test process).

    RLIMIT_NPROC counts every process of a uid, so a limit tested under the usual
    sandbox uid would also count the cells and compiles of tests running beside it.
    """
    return replace(load_settings(), sandbox_uid=_LONE_UID_BASE + os.getpid())
