"""One typed Settings object and its loader; the only reader of ``os.environ``.

Precedence, lowest first: built-in defaults < ``pf.toml`` (``[pf]`` table) in the working
directory < ``PF_*`` environment < explicit overrides (CLI flags). Each value remembers
where it came from, for ``pf config``. Imports nothing from pf but its errors.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from pf.errors import ConfigError

MiB = 1024 * 1024
GiB = 1024 * MiB

DEFAULT_BUILD_TIMEOUT = 120.0
DEFAULT_MAX_BUFFER = 1 * MiB
DEFAULT_CACHE_MAX_BYTES = 2 * GiB
DEFAULT_MAX_MEMORY = 8 * GiB
DEFAULT_MAX_FILE_SIZE = 512 * MiB
DEFAULT_MAX_PROCS = 4096
DEFAULT_MAX_OPEN_FILES = 1024
# nobody/nogroup on Debian: a uid that owns nothing, so a compile can touch nothing.
DEFAULT_SANDBOX_UID = 65534
SANDBOXES = ("bwrap", "off")
# Compiler caches in front of task runs' C compilers and cargo (pf.tasks.compilercache).
COMPILER_CACHES = ("auto", "ccache", "sccache", "off")
WAT_ASSEMBLERS = ("wabt-wasm", "wat2wasm")
DEFAULT_COMPILER_CACHE_MAX_SIZE = 5 * GiB


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


# The largest size or count pf accepts: limits become rlimits and SQLite integers, which
# take 64 bits; beyond this a typo of many zeros fails later, inside a system call.
MAX_INTEGER = 2**60
# The longest wait pf accepts, in seconds: waits on selectors take a 32-bit millisecond
# timeout (about 24.8 days), and a longer one raises OverflowError mid-build.
MAX_SECONDS = 2_000_000.0
MAX_DAYS = 36_500  # history kept for a century is history kept for ever


def _finite(text: str) -> float:
    # float() accepts "nan" and "inf" (and "1e999", which is inf): no limit or duration
    # can be either, and they would reach arithmetic and system calls that raise.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


def _at_most(value: int, text: str) -> int:
    if value > MAX_INTEGER:
        raise ValueError(f"expected at most {MAX_INTEGER}, got {text!r}")
    return value


def _parse_size(text: str) -> int:
    """Parse ``1048576``, ``512K``, ``64M`` or ``2G`` into bytes."""
    stripped = text.strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 1024, "M": MiB, "G": GiB}.get(stripped[-1:], 1)
    number = stripped[:-1] if scale != 1 else stripped
    value = int(_finite(number) * scale)
    if value <= 0:
        raise ValueError(f"expected a positive size, got {text!r}")
    return _at_most(value, text)


def _parse_seconds(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise ValueError(f"expected a positive number, got {text!r}")
    if value > MAX_SECONDS:
        raise ValueError(f"expected at most {MAX_SECONDS:g} seconds, got {text!r}")
    return value


def _parse_days(text: str) -> float:
    value = _finite(text)
    if not 0 < value <= MAX_DAYS:
        raise ValueError(f"expected a number of days above 0 and at most {MAX_DAYS}, got {text!r}")
    return value


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _parse_positive_int(text: str) -> int:
    value = _whole(text)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return _at_most(value, text)


def _parse_non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise ValueError(f"expected 0 or a positive integer, got {text!r}")
    return _at_most(value, text)


def _parse_list(text: str) -> tuple[str, ...]:
    """A comma-separated list; empty items are dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _parse_sandbox(text: str) -> str:
    value = text.strip().lower()
    value = {"on": "bwrap", "1": "bwrap", "true": "bwrap", "0": "off", "false": "off"}.get(
        value, value
    )
    if value not in SANDBOXES:
        raise ValueError(f"expected one of {', '.join(SANDBOXES)}, got {text!r}")
    return value


def _parse_compiler_cache(text: str) -> str:
    value = text.strip().lower()
    if value not in COMPILER_CACHES:
        raise ValueError(f"expected one of {', '.join(COMPILER_CACHES)}, got {text!r}")
    return value


def _parse_wat_assembler(text: str) -> str:
    value = text.strip().lower()
    if value not in WAT_ASSEMBLERS:
        raise ValueError(f"expected one of {', '.join(WAT_ASSEMBLERS)}, got {text!r}")
    return value


def _parse_optional_path(text: str) -> Path | None:
    # Empty means unset, as the task runner's start path reads it (pf._environ).
    return Path(text) if text else None


_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def _parse_optional_name(text: str) -> str | None:
    # Empty means unset, as for the optional paths.
    return text.strip() or None


def _parse_proxies(text: str) -> tuple[str, ...]:
    """Addresses and networks (``10.0.0.0/8``), each normalised; a name or ``*`` is refused:
    trust is given to what a socket's peer address can be compared with, and to no more."""
    # Imported only when the setting is given: a millisecond `pf list` need not pay.
    import ipaddress

    proxies = []
    for item in _parse_list(text):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"expected IP addresses or networks (10.0.0.0/8), got {item!r}"
            ) from None
        proxies.append(str(network.network_address if network.num_addresses == 1 else network))
    return tuple(proxies)


# listen() takes a C int; the kernel then caps it at net.core.somaxconn.
MAX_BACKLOG = 2**31 - 1


def _parse_backlog(text: str) -> int:
    value = _parse_positive_int(text)
    if value > MAX_BACKLOG:
        raise ValueError(f"expected at most {MAX_BACKLOG}, got {text!r}")
    return value


def _parse_log_level(text: str) -> str:
    level = text.strip().lower()
    if level not in _LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(_LOG_LEVELS)}, got {text!r}")
    return level


def parse_listen_address(text: str) -> str | None:
    """``[HOST:]PORT`` (host 127.0.0.1 when left out; port 0 picks a free one) as
    ``HOST:PORT``; empty means unset."""
    text = text.strip()
    if not text:
        return None
    host, colon, port = text.rpartition(":")
    host = host.strip("[]") if colon else "127.0.0.1"
    number = _whole(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"expected a port from 0 to 65535, got {text!r}")
    if not host:
        raise ValueError(f"expected HOST:PORT or PORT, got {text!r}")
    return f"{host}:{number}"


MAX_TRACE_FRAMES = 100  # tracemalloc's cost grows with the frames it keeps per allocation


def _parse_frames(text: str) -> int:
    value = int(text) if text.strip().isdigit() else int(_parse_bool(text))
    if value > MAX_TRACE_FRAMES:
        raise ValueError(f"expected 0 to {MAX_TRACE_FRAMES} frames, got {text!r}")
    return value


@dataclass(frozen=True)
class Settings:
    """Everything pf can be configured with. Build with :func:`load_settings`."""

    build_timeout: float = DEFAULT_BUILD_TIMEOUT
    max_buffer: int = DEFAULT_MAX_BUFFER
    cache_dir: Path = Path(".pf/cache")
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    max_memory: int = DEFAULT_MAX_MEMORY
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    max_procs: int = DEFAULT_MAX_PROCS
    jobs: int = field(default_factory=lambda: os.cpu_count() or 1)
    ccache: bool = True
    # The Pfyfile to use instead of searching for Pfyfile.pf (PFY_FILE, as the original).
    pfy_file: Path | None = None
    # pf serve.
    database_url: str | None = None  # default: SQLite file .pf/pf.db beside the cache
    max_queue: int = 1000
    max_builds: int = 1000  # build records kept in memory; history stays in the database
    max_logs_per_build: int = 20_000  # log lines stored per build
    max_log_size: int = 4 * MiB  # log bytes stored per build
    history_days: float = 30.0
    max_history: int = 100_000  # build records kept in the database
    max_body: int = 4 * MiB
    ws_batch_ms: int = 100
    max_ws_connections: int = 2000
    ws_send_queue: int = 1000  # messages queued per slow WebSocket client (server/ws.py)
    ws_max_size: int = 64 * 1024  # largest incoming WebSocket message
    # The project a build request without one gets; None: see engine.catalog.Projects.
    default_project: str | None = None
    log_level: str = "info"
    shutdown_grace: float = 30.0
    # Containment of untrusted compiles.
    sandbox: str = "bwrap"  # "off" only where user namespaces are unavailable
    sandbox_uid: int = DEFAULT_SANDBOX_UID  # compilers run as this uid/gid when pf is root
    max_open_files: int = DEFAULT_MAX_OPEN_FILES
    api_build_timeout: float = 30.0  # compiles submitted over HTTP: shorter than CLI builds
    # Who may call the API and from where.
    cors_origins: tuple[str, ...] = ()  # empty: same-origin only
    allowed_hosts: tuple[str, ...] = ()  # Host names beyond the bound address and localhost
    session_ttl: float = 12 * 3600.0  # the dashboard's session cookie
    # Abuse limits, per client (a token, else an address).
    rate_limit: int = 300  # submissions per minute; 0 turns the limit off
    rate_burst: int = 100
    # HTTP connection limits.
    max_headers: int = 100
    max_header_size: int = 16 * 1024  # request line and headers together
    header_timeout: float = 10.0  # to receive a request's headers
    keepalive_timeout: float = 5.0  # idle time between requests on a connection
    max_connections: int = 4096
    # Readiness: below this much free space where builds write, pf says it is not ready.
    min_free_disk: int = 256 * MiB
    # Shared mode: a PostgreSQL PF_DATABASE_URL and PF_REDIS_URL together (docs/scale.md).
    redis_url: str | None = None
    api_workers: int = 1  # pf serve's API processes on one port
    worker_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)  # pf worker
    # Whether pf serve runs builds itself: None = yes unless in shared mode, where pf worker
    # processes take them from the job queue.
    local_builds: bool | None = None
    event_stream_max: int = 10_000  # build events kept in the shared event stream
    # How long a task's SSH login to a remote host may take before that host is given up.
    ssh_connect_timeout: float = 10.0
    # Shared mode's compile cache in the database (blobs of every worker's outputs).
    shared_cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    # pf worker: how often each one says it is alive, and after how long without a word
    # its builds are given to another (docs/scale.md: recovery takes about the sum).
    worker_heartbeat: float = 2.0
    worker_stalled_after: float = 8.0
    # Peers whose X-Forwarded-For and X-Forwarded-Proto pf believes (a reverse proxy's
    # addresses or networks); empty: nobody's, the socket's peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # pf serve's listen backlog: connections the kernel completes before pf accepts them
    # (capped by net.core.somaxconn; deploy/sysctl.d/60-pf.conf raises that).
    backlog: int = 2048
    # Task runs: ccache or sccache in front of C compilers and cargo, where the cache
    # lives (None: "compilers" under cache_dir) and how large it may grow.
    compiler_cache: str = "auto"
    compiler_cache_dir: Path | None = None
    compiler_cache_max_size: int = DEFAULT_COMPILER_CACHE_MAX_SIZE
    # Observability (docs/api.md's debug endpoints, deploy/prometheus).
    worker_metrics: str | None = None  # pf worker's /metrics as HOST:PORT; None: not served
    profile_max_seconds: float = 30.0  # the longest sample GET /api/debug/profile takes
    tracemalloc: int = 0  # frames kept per allocation from the start; 0: traced only once asked
    # Confined steps one sandbox cell runs before it is retired; 0: one bubblewrap per step.
    # A cell's start (about 5 ms) spread over 500 steps is nothing, and a bounded life
    # bounds whatever a cell might accumulate that pf does not know to clear.
    sandbox_cell_jobs: int = 500
    # Where unconfined compiles' scratch directories go (None: a tmpfs if there is one
    # with room, else "tmp" under cache_dir).
    scratch_dir: Path | None = None
    # What assembles WAT: wabt built to WebAssembly in a resident sandboxed process, or
    # the system's wat2wasm started for every module (the same wabt, but a process each).
    wat_assembler: str = "wabt-wasm"
    # Tool paths pinned by the user (PF_TOOL_CLANG=/opt/clang/bin/clang), by tool name.
    tools: Mapping[str, str] = field(default_factory=dict)
    # The environment every tool starts from: the few variables compilers read, with a
    # fixed locale so diagnostics parse the same everywhere.
    base_env: Mapping[str, str] = field(default_factory=dict)
    origins: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def shared(self) -> bool:
        """Shared mode: state in PostgreSQL and Redis, builds on pf worker processes."""
        url = self.database_url or ""
        return self.redis_url is not None and url.startswith(("postgresql", "postgres:"))

    @property
    def builds_here(self) -> bool:
        """Whether pf serve runs builds in its own process (PF_LOCAL_BUILDS)."""
        return self.local_builds if self.local_builds is not None else not self.shared

    def origin(self, name: str) -> str:
        return self.origins.get(name, "default")


# Setting name -> (environment variable, parser).
_SOURCES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "build_timeout": ("PF_BUILD_TIMEOUT", _parse_seconds),
    "max_buffer": ("PF_MAX_BUFFER", _parse_size),
    "cache_dir": ("PF_CACHE_DIR", Path),
    "cache_max_bytes": ("PF_CACHE_MAX_BYTES", _parse_size),
    "max_memory": ("PF_MAX_MEMORY", _parse_size),
    "max_file_size": ("PF_MAX_FILE_SIZE", _parse_size),
    "max_procs": ("PF_MAX_PROCS", _parse_positive_int),
    "jobs": ("PF_JOBS", _parse_positive_int),
    "ccache": ("PF_CCACHE", _parse_bool),
    "pfy_file": ("PFY_FILE", _parse_optional_path),
    "database_url": ("PF_DATABASE_URL", str),
    "max_queue": ("PF_MAX_QUEUE", _parse_positive_int),
    "max_builds": ("PF_MAX_BUILDS", _parse_positive_int),
    "max_logs_per_build": ("PF_MAX_LOGS_PER_BUILD", _parse_positive_int),
    "max_log_size": ("PF_MAX_LOG_SIZE", _parse_size),
    "history_days": ("PF_HISTORY_DAYS", _parse_days),
    "max_history": ("PF_MAX_HISTORY", _parse_positive_int),
    "max_body": ("PF_MAX_BODY", _parse_size),
    "ws_batch_ms": ("PF_WS_BATCH_MS", _parse_positive_int),
    "max_ws_connections": ("PF_MAX_WS_CONNECTIONS", _parse_positive_int),
    "ws_send_queue": ("PF_WS_SEND_QUEUE", _parse_positive_int),
    "ws_max_size": ("PF_WS_MAX_SIZE", _parse_size),
    "default_project": ("PF_DEFAULT_PROJECT", _parse_optional_name),
    "log_level": ("PF_LOG_LEVEL", _parse_log_level),
    "shutdown_grace": ("PF_SHUTDOWN_GRACE", _parse_seconds),
    "sandbox": ("PF_SANDBOX", _parse_sandbox),
    "sandbox_uid": ("PF_SANDBOX_UID", _parse_positive_int),
    "max_open_files": ("PF_MAX_OPEN_FILES", _parse_positive_int),
    "api_build_timeout": ("PF_API_BUILD_TIMEOUT", _parse_seconds),
    "cors_origins": ("PF_CORS_ORIGINS", _parse_list),
    "allowed_hosts": ("PF_ALLOWED_HOSTS", _parse_list),
    "session_ttl": ("PF_SESSION_TTL", _parse_seconds),
    "rate_limit": ("PF_RATE_LIMIT", _parse_non_negative_int),
    "rate_burst": ("PF_RATE_BURST", _parse_positive_int),
    "max_headers": ("PF_MAX_HEADERS", _parse_positive_int),
    "max_header_size": ("PF_MAX_HEADER_SIZE", _parse_size),
    "header_timeout": ("PF_HEADER_TIMEOUT", _parse_seconds),
    "keepalive_timeout": ("PF_KEEPALIVE_TIMEOUT", _parse_seconds),
    "max_connections": ("PF_MAX_CONNECTIONS", _parse_positive_int),
    "min_free_disk": ("PF_MIN_FREE_DISK", _parse_size),
    "redis_url": ("PF_REDIS_URL", _parse_optional_name),
    "api_workers": ("PF_API_WORKERS", _parse_positive_int),
    "worker_concurrency": ("PF_WORKER_CONCURRENCY", _parse_positive_int),
    "local_builds": ("PF_LOCAL_BUILDS", _parse_bool),
    "event_stream_max": ("PF_EVENT_STREAM_MAX", _parse_positive_int),
    "ssh_connect_timeout": ("PF_SSH_CONNECT_TIMEOUT", _parse_seconds),
    "shared_cache_max_bytes": ("PF_SHARED_CACHE_MAX_BYTES", _parse_size),
    "worker_heartbeat": ("PF_WORKER_HEARTBEAT", _parse_seconds),
    "worker_stalled_after": ("PF_WORKER_STALLED_AFTER", _parse_seconds),
    "trusted_proxies": ("PF_TRUSTED_PROXIES", _parse_proxies),
    "backlog": ("PF_BACKLOG", _parse_backlog),
    "compiler_cache": ("PF_COMPILER_CACHE", _parse_compiler_cache),
    "compiler_cache_dir": ("PF_COMPILER_CACHE_DIR", _parse_optional_path),
    "compiler_cache_max_size": ("PF_COMPILER_CACHE_MAX_SIZE", _parse_size),
    "worker_metrics": ("PF_WORKER_METRICS", parse_listen_address),
    "profile_max_seconds": ("PF_PROFILE_MAX_SECONDS", _parse_seconds),
    "tracemalloc": ("PF_TRACEMALLOC", _parse_frames),
    "sandbox_cell_jobs": ("PF_SANDBOX_CELL_JOBS", _parse_non_negative_int),
    "scratch_dir": ("PF_SCRATCH_DIR", _parse_optional_path),
    "wat_assembler": ("PF_WAT_ASSEMBLER", _parse_wat_assembler),
}

_TOOL_PREFIX = "PF_TOOL_"
_PASSED_THROUGH = ("PATH", "HOME", "TMPDIR", "USER", "CCACHE_DIR")


def _parse(name: str, raw: object, where: str) -> Any:
    env_name, parser = _SOURCES[name]
    # pf.toml may give a list where the environment gives a comma-separated string.
    text = ",".join(map(str, raw)) if isinstance(raw, list) else str(raw)
    try:
        return parser(text)
    except (ValueError, IndexError) as exc:
        raise ConfigError(f"{where}: invalid value for {name} ({env_name}): {exc}") from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return {}
    # Imported only when a pf.toml exists: tomllib costs 4 ms that `pf list` cannot spare.
    import tomllib

    try:
        with handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    table = data.get("pf", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [pf] must be a table")
    return table


def environment_names() -> dict[str, str]:
    """Each setting's name -> the environment variable that sets it (``PF_JOBS``...)."""
    return {name: env_name for name, (env_name, _) in _SOURCES.items()}


def load_settings(
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    toml_path: Path | None = None,
) -> Settings:
    """Build Settings from defaults, ``pf.toml``, the environment and overrides."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    toml_file = toml_path if toml_path is not None else Path("pf.toml")
    known = {f.name for f in fields(Settings)} - {"origins", "tools", "base_env"}
    for key, raw in _read_toml(toml_file).items():
        if key not in known:
            raise ConfigError(f"{toml_file}: unknown setting {key!r}")
        values[key] = _parse(key, raw, str(toml_file))
        origins[key] = str(toml_file)
    for name, (env_name, _) in _SOURCES.items():
        if env_name in env:
            values[name] = _parse(name, env[env_name], env_name)
            origins[name] = env_name
    tools = {
        key[len(_TOOL_PREFIX) :].lower().replace("_", "-"): value
        for key, value in env.items()
        if key.startswith(_TOOL_PREFIX) and value
    }
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = value
        origins[name] = "command line"
    base_env = {name: env[name] for name in _PASSED_THROUGH if name in env}
    base_env.setdefault("PATH", os.defpath)
    base_env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")
    return replace(Settings(), **values, tools=tools, base_env=base_env, origins=origins)
