"""One settings object per test module, its cache in a temp dir: compiles repeat across tests."""

from __future__ import annotations

import pytest

from pf.config import Settings
from tests.toolchains.support import fresh_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return fresh_settings(tmp_path_factory.mktemp("pf-toolchain"))
