"""One settings object per test module, its cache in a temp dir: compiles repeat across tests."""

from __future__ import annotations

import os

import pytest

from pf.config import Settings, load_settings


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("pf-toolchain")
    return load_settings(
        environ={"PATH": os.environ.get("PATH", os.defpath), "HOME": str(root)},
        overrides={"cache_dir": root / "cache"},
        toml_path=root / "absent.toml",
    )
