from __future__ import annotations

from pathlib import Path

import pytest

from pf.config import GiB, MiB, load_settings
from pf.errors import ConfigError


def test_defaults_then_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    toml = tmp_path / "pf.toml"
    toml.write_text('[pf]\nbuild_timeout = 30\nmax_buffer = "2M"\n')
    settings = load_settings(
        environ={"PF_BUILD_TIMEOUT": "45", "PF_CACHE_MAX_BYTES": "1G"},
        overrides={"jobs": 3},
        toml_path=toml,
    )
    assert settings.build_timeout == 45.0
    assert settings.origin("build_timeout") == "PF_BUILD_TIMEOUT"
    assert settings.max_buffer == 2 * MiB
    assert settings.origin("max_buffer") == str(toml)
    assert settings.cache_max_bytes == 1 * GiB
    assert settings.jobs == 3 and settings.origin("jobs") == "command line"
    assert settings.origin("max_memory") == "default"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PF_BUILD_TIMEOUT": "soon"}, "PF_BUILD_TIMEOUT"),
        ({"PF_BUILD_TIMEOUT": "-1"}, "positive"),
        ({"PF_MAX_BUFFER": "lots"}, "PF_MAX_BUFFER"),
        ({"PF_CCACHE": "maybe"}, "true or false"),
        ({"PF_JOBS": "0"}, "positive integer"),
    ],
)
def test_invalid_values_name_the_setting(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=env, toml_path=tmp_path / "absent.toml")


def test_unknown_toml_setting_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "pf.toml"
    toml.write_text("[pf]\nbuild_timeuot = 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'build_timeuot'"):
        load_settings(environ={}, toml_path=toml)


def test_tool_pins_and_base_environment(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"PF_TOOL_CLANG": "/opt/clang", "PATH": "/bin", "SECRET": "x"},
        toml_path=tmp_path / "absent.toml",
    )
    assert settings.tools == {"clang": "/opt/clang"}
    assert settings.base_env["PATH"] == "/bin"
    assert "SECRET" not in settings.base_env
