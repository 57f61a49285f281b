"""Find a tool, read its version and digest its binary; remember the answer across runs.

Running ``clang --version`` and hashing a 100 MB binary cost more than a whole cache
hit may take, so a probe is remembered in ``<cache_dir>/probes.json``, keyed by the
binary's resolved path and checked against its size, mtime and inode (ccache's
``compiler_check = mtime``). Replacing the binary changes the stat and forces a probe.

Where a tool is found (a PATH search, then resolving its links) is remembered in-process
too, for ``_RELOCATE_SECONDS``: on a server those lookups cost about half a millisecond
per tool per compile, as much as pf's whole bookkeeping of a WAT compile. The remembered
binary is checked with one stat on every use, so one removed or replaced is seen at once;
one newly installed earlier on PATH is seen within that time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

from pf.config import Settings
from pf.errors import ToolchainMissing
from pf.sandbox import Limits, run
from pf.toolchains.base import ToolInfo, ToolSpec

_PROBE_FILE = "probes.json"
_PROBE_LIMITS = Limits(timeout=20.0, max_output=64 * 1024)
_lock = threading.Lock()
_memo: dict[tuple[str, str], dict[str, object]] = {}
_RELOCATE_SECONDS = 1.0
# (tool, pinned path, PATH) -> (binary, its resolved path, that file's stat key, when found)
_located: dict[tuple[str, str | None, str], tuple[str, str, list[int], float]] = {}


def _which(candidate: str, path: str) -> str | None:
    if os.path.isabs(candidate):
        return candidate if os.access(candidate, os.X_OK) and os.path.isfile(candidate) else None
    return shutil.which(candidate, path=path)


def locate(spec: ToolSpec, settings: Settings) -> str | None:
    """The binary that serves ``spec`` here, or None."""
    pinned = settings.tools.get(spec.name)
    if pinned:
        return _which(pinned, settings.base_env.get("PATH", os.defpath))
    for candidate in spec.candidates:
        found = _which(candidate, settings.base_env.get("PATH", os.defpath))
        if found:
            return found
    return None


def _stat_key(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _digest(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _read_version(spec: ToolSpec, binary: str, settings: Settings) -> str:
    done = run(
        (binary, *spec.version_args),
        cwd=Path("/"),
        env=settings.base_env,
        limits=_PROBE_LIMITS,
    )
    text = done.stdout + done.stderr
    match = re.search(spec.version_pattern, text)
    if not done.ok or not match:
        raise ToolchainMissing(
            f"{spec.name} ({binary})",
            f"does not answer '{' '.join(spec.version_args)}' with a version",
            spec.install,
        )
    return match.group(1)


def _load(file: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save(file: Path, data: dict[str, dict[str, object]]) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
    os.replace(tmp, file)


def _find(spec: ToolSpec, settings: Settings) -> tuple[str, str, list[int]]:
    """The binary for ``spec``, its resolved path and its stat key: remembered for
    ``_RELOCATE_SECONDS`` while the resolved file's stat stays the same."""
    where = settings.tools.get(spec.name)
    key = (spec.name, where, settings.base_env.get("PATH", os.defpath))
    now = time.monotonic()
    with _lock:
        known = _located.get(key)
    if known is not None and now - known[3] < _RELOCATE_SECONDS:
        with contextlib.suppress(OSError):
            if _stat_key(known[1]) == known[2]:
                return known[0], known[1], known[2]
    binary = locate(spec, settings)
    if binary is None:
        reason = (
            f"PF_TOOL_{spec.name.upper()}={where} is not executable" if where else "not installed"
        )
        raise ToolchainMissing(spec.name, reason, spec.install)
    real = os.path.realpath(binary)
    stat = _stat_key(real)
    with _lock:
        _located[key] = (binary, real, stat, now)
    return binary, real, stat


def detect(spec: ToolSpec, settings: Settings) -> ToolInfo:
    """The installed tool for ``spec``; raises ToolchainMissing with the install command."""
    binary, real, stat = _find(spec, settings)
    memo_key = (spec.name, real)
    with _lock:
        entry = _memo.get(memo_key)
    if entry is None or entry.get("stat") != stat:
        file = settings.cache_dir / _PROBE_FILE
        with _lock:
            stored = _load(file)
        entry = stored.get(f"{spec.name}\0{real}")
        if entry is None or entry.get("stat") != stat:
            entry = {
                "stat": stat,
                "version": _read_version(spec, binary, settings),
                "digest": _digest(real),
            }
            # The probe file only saves the next run a probe: a read-only cache directory
            # costs speed, not correctness, and the compile itself reports it if it matters.
            with _lock, contextlib.suppress(OSError):
                stored = _load(file)
                stored[f"{spec.name}\0{real}"] = entry
                _save(file, stored)
        with _lock:
            _memo[memo_key] = entry
    return ToolInfo(
        name=spec.name, path=binary, version=str(entry["version"]), digest=str(entry["digest"])
    )
