"""What a command is wrapped in before it starts, chosen by ``Settings.sandbox``.

Two purposes, each a dispatch table from the setting to a wrapper:

- ``compile_command``: untrusted work (a compiler fed strangers' sources). ``bwrap``
  runs it in bubblewrap with every namespace unshared (no network, its own pids, ipc,
  uts and mounts), a fresh ``/proc`` and ``/tmp``, a minimal ``/dev``, the system's
  ``/usr`` and the caller's extra read-only paths, and one writable directory, bound at
  its own path: nothing else of the host exists inside. When pf is root the command
  runs as ``Settings.sandbox_uid`` (``Command.user``: process.run drops to it before
  bwrap starts), never root inside, so RLIMIT_NPROC holds.
  ``off`` runs the command as it is, under the caller's rlimits only.
- ``task_command``: trusted work (the operator's task commands run by pf serve) that
  must not outlive pf. ``bwrap`` gives it a pid namespace of its own on the host's
  whole filesystem, so when pf dies (even by SIGKILL) bubblewrap dies with it and the
  kernel kills every process in the namespace, grandchildren included. ``off`` only
  marks its environment, so :func:`reap_orphans` can find what a killed server left.

``probe`` says once whether bubblewrap can start here; while it cannot, the ``bwrap``
wrappers raise SandboxUnavailable: compiles fail closed. Knows nothing of builds: the
caller passes the writable directory, the read-only paths and the settings.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import signal
import stat
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pf.config import Settings
from pf.errors import SandboxUnavailable
from pf.sandbox.limits import Limits
from pf.sandbox.process import _check_program, run

SYSTEM_DIR = "/usr"
# Tools inside find only what /usr holds; pf names every tool by its absolute path.
INSIDE_PATH = "/usr/bin:/bin"
# A task run by pf serve carries this variable; its value names the server process.
OWNER_VARIABLE = "PF_TASK_OWNER"
_TOP_LEVEL = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_PROBE_LIMITS = Limits(timeout=10.0, max_output=16 * 1024)
_INSTALL = "install bubblewrap: apt-get install bubblewrap"
_USERNS = (
    "allow unprivileged user namespaces: sysctl -w kernel.unprivileged_userns_clone=1 and "
    "sysctl -w user.max_user_namespaces=15000; on a machine that cannot have them, "
    "PF_SANDBOX=off runs compiles unconfined (only for sources you trust)"
)


@dataclass(frozen=True)
class Confinement:
    """What a confined command sees: one writable directory (also its working
    directory, bound at its own path) and extra read-only paths beside ``/usr``."""

    writable: Path
    readonly: tuple[Path, ...] = ()


@dataclass(frozen=True)
class Command:
    """A command ready for :func:`pf.sandbox.run`: its argv, its environment and the uid
    it runs as (None: pf's own)."""

    argv: tuple[str, ...]
    env: dict[str, str]
    user: int | None = None


def sandbox_uid(settings: Settings) -> int | None:
    """The uid confined commands run as: ``sandbox_uid`` when pf is root and the sandbox
    is on; None (pf's own uid) otherwise."""
    if settings.sandbox == "off" or os.geteuid() != 0:
        return None
    return settings.sandbox_uid


_found_bwrap: dict[tuple[str, str], str] = {}


def _bwrap(settings: Settings) -> str | None:
    # PF_TOOL_BWRAP pins it like any tool; else the PATH pf's tools are searched on.
    name = settings.tools.get("bwrap") or "bwrap"
    key = (name, settings.base_env.get("PATH", os.defpath))
    # A search of the PATH is a stat per directory, for every confined build: a path
    # found is remembered while it stays executable, a miss is not (an install counts).
    known = _found_bwrap.get(key)
    if known is not None and os.access(known, os.X_OK):
        return known
    found = shutil.which(name, path=key[1])
    if found is None:
        return None
    _found_bwrap[key] = os.path.abspath(found)
    return _found_bwrap[key]


@functools.cache
def _top_level() -> tuple[str, ...]:
    """bwrap options that recreate /bin, /lib... as the host has them: links into /usr
    on a merged-/usr system, read-only directories otherwise."""
    options: list[str] = []
    for path in _TOP_LEVEL:
        if os.path.islink(path):
            options += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            options += ["--ro-bind", path, path]
    return tuple(options)


def _isolated(bwrap: str, readonly: Sequence[Path], tmp: Path | None = None) -> list[str]:
    # --die-with-parent is PR_SET_PDEATHSIG, which fires when the *thread* that started
    # bwrap exits: pf starts compiles from long-lived worker threads, so it means "dies
    # with pf". --new-session keeps a tool from pushing input into pf's terminal.
    options = [
        bwrap,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        SYSTEM_DIR,
        SYSTEM_DIR,
        *_top_level(),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # A directory of pf's (a cell's, which pf empties between builds) or a tmpfs.
        *(["--tmpfs", "/tmp"] if tmp is None else ["--bind", str(tmp), "/tmp"]),
    ]
    # After the tmpfs on /tmp, so a path under /tmp is mounted on top of it.
    for path in readonly:
        options += ["--ro-bind", str(path), str(path)]
    return options


_probe_lock = threading.Lock()
_probed: set[tuple[str, int | None]] = set()


def probe(settings: Settings) -> SandboxUnavailable | None:
    """Why compiles cannot be confined here, or None when they can (or the sandbox is off:
    see :func:`warning`). A success is remembered per bwrap binary and uid; a failure is
    not, so installing bubblewrap takes effect without a restart."""
    if settings.sandbox == "off":
        return None
    bwrap = _bwrap(settings)
    if bwrap is None:
        pinned = settings.tools.get("bwrap")
        cause = (
            f"PF_TOOL_BWRAP names {pinned}, which is not an executable"
            if pinned
            else "bubblewrap (bwrap) is not installed"
        )
        return SandboxUnavailable(cause, _INSTALL)
    uid = sandbox_uid(settings)
    key = (bwrap, uid)
    with _probe_lock:
        if key in _probed:
            return None
    done = run(
        [*_isolated(bwrap, ()), "--remount-ro", "/", "--", "/usr/bin/true"],
        cwd=Path("/"),
        env={"PATH": INSIDE_PATH, "LC_ALL": "C.UTF-8"},
        limits=_PROBE_LIMITS,
        user=uid,
    )
    if not done.ok:
        said = (done.stderr or done.stdout).strip().splitlines()
        cause = said[-1] if said else f"{bwrap} exited with code {done.code}"
        return SandboxUnavailable(f"{bwrap} failed: {cause}", _USERNS)
    with _probe_lock:
        _probed.add(key)
    return None


def warning(settings: Settings) -> str | None:
    """What pf serve should log at every start when compiles are not confined."""
    if settings.sandbox != "off":
        return None
    return (
        "PF_SANDBOX=off: compiles run unconfined, as pf's own user, with the host's files "
        "and network; expose this server to trusted sources only"
    )


def _reachable(path: Path, uid: int) -> bool:
    """Whether ``uid`` (with no groups, as the command runs) may traverse to ``path``."""
    for directory in path.parents:
        st = os.stat(directory)
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def outside_system(readonly: Sequence[Path]) -> tuple[Path, ...]:
    """The read-only paths a sandbox must bind besides /usr, which it has whole."""
    return tuple(p for p in readonly if not _under(p, SYSTEM_DIR))


def check_reachable(paths: Sequence[Path], uid: int | None) -> None:
    """Raise SandboxUnavailable unless ``uid`` (pf's own when None) reaches every path."""
    if uid is None:
        return
    for path in paths:
        if not _reachable(path, uid):
            raise SandboxUnavailable(
                f"the sandbox's user (uid {uid}) cannot reach {path}",
                "make every directory above it traversable (chmod o+x), "
                "or install the tool under /usr",
            )


def inside_env(env: Mapping[str, str]) -> dict[str, str]:
    inside = {k: v for k, v in env.items() if not k.startswith("CCACHE_")}
    # The host's HOME and TMPDIR do not exist inside: both point at the private tmpfs.
    inside.update(PATH=INSIDE_PATH, HOME="/tmp", TMPDIR="/tmp")
    return inside


def _compile_bwrap(
    argv: Sequence[str], env: Mapping[str, str], confinement: Confinement, settings: Settings
) -> Command:
    failure = probe(settings)
    if failure is not None:
        raise failure
    bwrap = _bwrap(settings)
    assert bwrap is not None  # the probe found it
    uid = sandbox_uid(settings)
    readonly = outside_system(confinement.readonly)
    check_reachable((confinement.writable, *readonly), uid)
    writable = str(confinement.writable)
    options = _isolated(bwrap, readonly)
    # The root is bwrap's own tmpfs: read-only once everything is mounted on it, so the
    # scratch dir and the private /tmp are the only places a step can write.
    options += ["--bind", writable, writable, "--remount-ro", "/", "--chdir", writable]
    options += ["--", *argv]
    return Command(tuple(options), inside_env(env), uid)


def _compile_off(
    argv: Sequence[str], env: Mapping[str, str], confinement: Confinement, settings: Settings
) -> Command:
    return Command(tuple(argv), dict(env))


def _under(path: Path, directory: str) -> bool:
    # As Path(directory) in path.parents, on the strings: a path's parents are its
    # prefixes ending at a separator (a resident's key computes this on every request).
    text = str(path)
    return text == directory or text.startswith(directory.rstrip("/") + "/")


_COMPILE: dict[str, Callable[[Sequence[str], Mapping[str, str], Confinement, Settings], Command]]
_COMPILE = {"bwrap": _compile_bwrap, "off": _compile_off}


def compile_command(
    argv: Sequence[str], *, env: Mapping[str, str], confinement: Confinement, settings: Settings
) -> Command:
    """``argv`` as it must run for untrusted input under ``settings.sandbox``.

    Raises SandboxUnavailable when the sandbox is on but cannot start, or cannot reach
    one of the confinement's paths.
    """
    return _COMPILE[settings.sandbox](argv, env, confinement, settings)


@functools.cache
def _owner() -> str:
    """This process as ``pid:start time``: a pid alone may be reused after pf dies."""
    return f"{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    # Field 22, counted after the parenthesised command name (which may hold spaces).
    return text[text.rindex(b")") + 2 :].split()[19].decode()


def _task_bwrap(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], settings: Settings
) -> Command:
    # Checked here, before bwrap would only print it: the same error as without it.
    _check_program(argv[0], cwd, env)
    failure = probe(settings)
    if failure is not None:
        raise failure
    bwrap = _bwrap(settings)
    assert bwrap is not None  # the probe found it
    # As root, bwrap drops every capability unless told to keep them: a task of the
    # operator's (apt-get, chown) keeps what it would have had without the wrapper.
    keep = ["--cap-add", "ALL"] if os.geteuid() == 0 else []
    options = [
        bwrap,
        "--unshare-pid",
        "--die-with-parent",
        "--dev-bind",
        "/",
        "/",
        "--proc",
        "/proc",
        *keep,
        "--",
        *argv,
    ]
    return Command(tuple(options), {**env, OWNER_VARIABLE: _owner()})


def _task_off(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], settings: Settings
) -> Command:
    return Command(tuple(argv), {**env, OWNER_VARIABLE: _owner()})


_TASK: dict[str, Callable[[Sequence[str], Path, Mapping[str, str], Settings], Command]]
_TASK = {"bwrap": _task_bwrap, "off": _task_off}


def task_command(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], settings: Settings
) -> Command:
    """``argv`` of a trusted task as pf serve runs it in ``cwd``: tied to pf's life (see
    the module docstring). Raises SandboxUnavailable when bwrap is chosen but cannot start."""
    return _TASK[settings.sandbox](argv, cwd, env, settings)


def reap_orphans() -> int:
    """Kill the task processes a pf that is gone left behind; returns how many.

    A process counts when its environment names an owner (``pid:start time``) that no
    longer runs. pf serve calls this as it starts; with the ``bwrap`` wrapper there is
    normally nothing left to kill, with ``off`` this is what ends them.
    """
    marker = f"\0{OWNER_VARIABLE}=".encode()
    killed = 0
    alive: dict[str, bool] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as handle:
                environ = b"\0" + handle.read()
        except OSError:
            continue  # gone, or not ours to read
        at = environ.find(marker)
        if at < 0:
            continue
        owner = environ[at + len(marker) :].split(b"\0", 1)[0].decode(errors="replace")
        if owner not in alive:
            pid, _, started = owner.partition(":")
            alive[owner] = pid.isdigit() and _start_time(int(pid)) == started
        if not alive[owner]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed


def start_up(settings: Settings, log: logging.Logger, program: str) -> SandboxUnavailable | None:
    """What a program that runs compiles does as it starts: kill the task processes a
    killed ``program`` left running, warn when PF_SANDBOX is off, and probe the sandbox.
    Returns why compiles cannot be confined here, or None; the caller decides whether that
    stops it (pf worker) or only its compiles (pf serve)."""
    reaped = reap_orphans()
    if reaped:
        log.warning(
            f"killed task processes a {program} that was killed left running",
            extra={"processes": reaped},
        )
    unconfined = warning(settings)
    if unconfined is not None:
        log.warning(unconfined)
    return probe(settings)
