from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from pf.config import GiB, MiB, Settings, load_settings
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
        ({"PF_COMPILER_CACHE": "distcc"}, "auto, ccache, sccache, off"),
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


# Every numeric setting, by its environment variable: none may be nan, infinite, zero,
# negative or beyond what the system calls it reaches can take.
NUMERIC = {
    "build_timeout": "PF_BUILD_TIMEOUT",
    "max_buffer": "PF_MAX_BUFFER",
    "cache_max_bytes": "PF_CACHE_MAX_BYTES",
    "max_memory": "PF_MAX_MEMORY",
    "max_file_size": "PF_MAX_FILE_SIZE",
    "max_procs": "PF_MAX_PROCS",
    "jobs": "PF_JOBS",
    "max_queue": "PF_MAX_QUEUE",
    "max_builds": "PF_MAX_BUILDS",
    "max_logs_per_build": "PF_MAX_LOGS_PER_BUILD",
    "max_log_size": "PF_MAX_LOG_SIZE",
    "history_days": "PF_HISTORY_DAYS",
    "max_history": "PF_MAX_HISTORY",
    "max_body": "PF_MAX_BODY",
    "ws_batch_ms": "PF_WS_BATCH_MS",
    "max_ws_connections": "PF_MAX_WS_CONNECTIONS",
    "ws_send_queue": "PF_WS_SEND_QUEUE",
    "ws_max_size": "PF_WS_MAX_SIZE",
    "shutdown_grace": "PF_SHUTDOWN_GRACE",
    "sandbox_uid": "PF_SANDBOX_UID",
    "max_open_files": "PF_MAX_OPEN_FILES",
    "api_build_timeout": "PF_API_BUILD_TIMEOUT",
    "session_ttl": "PF_SESSION_TTL",
    "rate_burst": "PF_RATE_BURST",
    "max_headers": "PF_MAX_HEADERS",
    "max_header_size": "PF_MAX_HEADER_SIZE",
    "header_timeout": "PF_HEADER_TIMEOUT",
    "keepalive_timeout": "PF_KEEPALIVE_TIMEOUT",
    "max_connections": "PF_MAX_CONNECTIONS",
    "min_free_disk": "PF_MIN_FREE_DISK",
    "api_workers": "PF_API_WORKERS",
    "worker_concurrency": "PF_WORKER_CONCURRENCY",
    "event_stream_max": "PF_EVENT_STREAM_MAX",
    "ssh_connect_timeout": "PF_SSH_CONNECT_TIMEOUT",
    "shared_cache_max_bytes": "PF_SHARED_CACHE_MAX_BYTES",
    "worker_heartbeat": "PF_WORKER_HEARTBEAT",
    "worker_stalled_after": "PF_WORKER_STALLED_AFTER",
    "backlog": "PF_BACKLOG",
    "compiler_cache_max_size": "PF_COMPILER_CACHE_MAX_SIZE",
    "profile_max_seconds": "PF_PROFILE_MAX_SECONDS",
}
# Numeric settings where 0 means "off": every other bad number is still refused.
ZERO_MEANS_OFF = {
    "rate_limit": "PF_RATE_LIMIT",
    "tracemalloc": "PF_TRACEMALLOC",
    "sandbox_cell_jobs": "PF_SANDBOX_CELL_JOBS",
}
BAD_NUMBERS = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e999", "-1", "0", "1e30", "abc"]


def test_the_table_covers_every_numeric_setting() -> None:
    numeric = {f.name for f in fields(Settings) if f.type in ("int", "float")}
    assert set(NUMERIC) | set(ZERO_MEANS_OFF) == numeric


@pytest.mark.parametrize("value", [v for v in BAD_NUMBERS if v != "0"])
def test_zero_means_off_settings_refuse_other_bad_numbers(value: str, tmp_path: Path) -> None:
    for name, env_name in ZERO_MEANS_OFF.items():
        with pytest.raises(ConfigError, match=f"invalid value for {name} \\({env_name}\\)"):
            load_settings(environ={env_name: value}, toml_path=tmp_path / "absent.toml")
        assert getattr(load_settings(environ={env_name: "0"}, toml_path=tmp_path / "x"), name) == 0


def test_list_and_choice_settings(tmp_path: Path) -> None:
    toml = tmp_path / "pf.toml"
    toml.write_text('[pf]\nallowed_hosts = ["pf.example", "build.example"]\n')
    settings = load_settings(
        environ={"PF_CORS_ORIGINS": " https://a.example, ,https://b.example", "PF_SANDBOX": "on"},
        toml_path=toml,
    )
    assert settings.allowed_hosts == ("pf.example", "build.example")
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.sandbox == "bwrap"
    with pytest.raises(ConfigError, match="PF_SANDBOX"):
        load_settings(environ={"PF_SANDBOX": "docker"}, toml_path=tmp_path / "absent.toml")


def test_trusted_proxies_are_addresses_and_networks(tmp_path: Path) -> None:
    absent = tmp_path / "absent.toml"
    settings = load_settings(
        environ={"PF_TRUSTED_PROXIES": "127.0.0.1, 10.1.2.3/8,::1, fd00::/8, 192.0.2.7/32"},
        toml_path=absent,
    )
    assert settings.trusted_proxies == ("127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8", "192.0.2.7")
    assert load_settings(environ={}, toml_path=absent).trusted_proxies == ()
    for bad in ("*", "proxy.internal", "10.0.0.0/33", "127.0.0.1:80"):
        with pytest.raises(ConfigError, match=r"PF_TRUSTED_PROXIES.*IP addresses or networks"):
            load_settings(environ={"PF_TRUSTED_PROXIES": bad}, toml_path=absent)


def test_backlog_fits_listen(tmp_path: Path) -> None:
    absent = tmp_path / "absent.toml"
    assert load_settings(environ={}, toml_path=absent).backlog == 2048
    assert load_settings(environ={"PF_BACKLOG": "65535"}, toml_path=absent).backlog == 65535
    with pytest.raises(ConfigError, match=r"PF_BACKLOG.*at most 2147483647"):
        load_settings(environ={"PF_BACKLOG": str(2**31)}, toml_path=absent)


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize("name", NUMERIC)
def test_numeric_settings_refuse_non_finite_and_out_of_range_values(
    name: str, value: str, tmp_path: Path
) -> None:
    env_name = NUMERIC[name]
    with pytest.raises(ConfigError, match=f"invalid value for {name} \\({env_name}\\)"):
        load_settings(environ={env_name: value}, toml_path=tmp_path / "absent.toml")
    toml = tmp_path / "pf.toml"
    toml.write_text(f'[pf]\n{name} = "{value}"\n')
    with pytest.raises(ConfigError, match=f"{toml}: invalid value for {name}"):
        load_settings(environ={}, toml_path=toml)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PF_BUILD_TIMEOUT": "2000000"}, ("build_timeout", 2_000_000.0)),
        ({"PF_SHUTDOWN_GRACE": "0.5"}, ("shutdown_grace", 0.5)),
        ({"PF_HISTORY_DAYS": "36500"}, ("history_days", 36_500.0)),
        ({"PF_MAX_MEMORY": "1.5G"}, ("max_memory", 3 * GiB // 2)),
        ({"PF_MAX_PROCS": str(2**60)}, ("max_procs", 2**60)),
    ],
)
def test_values_up_to_the_limits_are_accepted(
    env: dict[str, str], expected: tuple[str, float], tmp_path: Path
) -> None:
    settings = load_settings(environ=env, toml_path=tmp_path / "absent.toml")
    name, value = expected
    assert getattr(settings, name) == value


def test_shared_mode_needs_both_urls(tmp_path: Path) -> None:
    absent = tmp_path / "absent.toml"
    pg = "postgresql://pf@127.0.0.1:5432/pf"
    both = load_settings(
        environ={"PF_DATABASE_URL": pg, "PF_REDIS_URL": "redis://127.0.0.1:6379/0"},
        toml_path=absent,
    )
    assert both.shared and not both.builds_here
    assert not load_settings(environ={"PF_DATABASE_URL": pg}, toml_path=absent).shared
    sqlite = load_settings(environ={"PF_REDIS_URL": "redis://h/0"}, toml_path=absent)
    assert not sqlite.shared and sqlite.builds_here
    one_box = load_settings(
        environ={
            "PF_DATABASE_URL": pg,
            "PF_REDIS_URL": "redis://127.0.0.1:6379/0",
            "PF_LOCAL_BUILDS": "1",
        },
        toml_path=absent,
    )
    assert one_box.shared and one_box.builds_here
