"""System verbs — ``packages``, ``service``, ``directory``, ``copy``, ``sync`` — as plans.

One design for all: every verb returns a :class:`~pf.tasks.tools.Plan`. Package, service
and sync verbs are commands (the system's package manager, systemctl, rsync) run through
the sandbox;
``directory`` and ``copy`` are in-process filesystem steps (``MakeDir``, ``CopyPath``)
that :func:`~pf.tasks.tools.run_plan` applies with pathlib/shutil, because spawning
``mkdir``/``cp``/``chmod``/``chown`` for them would only add processes and quoting.
Relative paths are relative to ``Context.cwd``. Imports only ``pf.tasks.tools``.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pf.tasks.tools import (
    Args,
    BadArgument,
    Context,
    CopyPath,
    MakeDir,
    Plan,
    Run,
    TaskError,
    Tool,
    VerbPlanner,
    find_tool,
    parse_bool,
    parse_list,
    parse_mode,
    split_args,
    suggest,
)

SYSTEMCTL = Tool.apt("systemctl", "systemd")
RSYNC = Tool.apt("rsync")
SSH = Tool.apt("ssh", "openssh-client")

PACKAGE_ACTIONS = ("install", "remove")
SERVICE_ACTIONS = (
    "start",
    "stop",
    "restart",
    "reload",
    "enable",
    "disable",
    "status",
    "is-active",
    "is-enabled",
)


def _not_an_option(verb: str, what: str, value: str) -> None:
    """Refuse a name that the tool it reaches would read as one of its own options.

    Task parameters fill these names in; no package, service, host or user name starts
    with '-', and ``apt-get -o...`` or ssh's ``-oProxyCommand=...`` run commands.
    """
    if value.startswith("-"):
        raise BadArgument(
            f"{verb}: the {what} {value!r} starts with '-', which {verb} would read as an option"
        )


def _check_action(verb: str, action: str, allowed: Sequence[str]) -> None:
    if action in allowed:
        return
    close = suggest(action, allowed)
    hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None
    raise BadArgument(
        f"{verb}: unknown action {action!r} (expected one of: {', '.join(allowed)})", hint=hint
    )


@dataclass(frozen=True)
class PackageManager:
    """A system package manager: its program, the words that install and remove, its env."""

    program: str
    install: tuple[str, ...]
    remove: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    #: Whether it changes the system and so needs root (Homebrew refuses to run as root).
    needs_root: bool = True


#: The package managers ``packages`` drives, in the order they are looked for on PATH.
PACKAGE_MANAGERS: tuple[PackageManager, ...] = (
    PackageManager(
        "apt-get",
        ("install", "-y", "-q"),
        ("remove", "-y", "-q"),
        (("DEBIAN_FRONTEND", "noninteractive"),),
    ),
    PackageManager("dnf", ("install", "-y"), ("remove", "-y")),
    PackageManager("yum", ("install", "-y"), ("remove", "-y")),
    PackageManager("zypper", ("--non-interactive", "install"), ("--non-interactive", "remove")),
    PackageManager("pacman", ("-S", "--noconfirm", "--needed"), ("-R", "--noconfirm")),
    PackageManager("apk", ("add",), ("del",)),
    PackageManager("brew", ("install",), ("uninstall",), needs_root=False),
)


def package_manager(ctx: Context) -> PackageManager:
    """The first of :data:`PACKAGE_MANAGERS` on the task's PATH; TaskError if there is none."""
    for manager in PACKAGE_MANAGERS:
        if shutil.which(manager.program, path=ctx.path):
            return manager
    names = ", ".join(m.program for m in PACKAGE_MANAGERS)
    raise TaskError(
        "packages: no system package manager found on PATH",
        hint=f"pf looks for {names}; install the packages by hand on this machine",
    )


def packages_plan(action: str, names: Sequence[str], *, ctx: Context) -> Plan:
    """Install or remove ``names`` with the system's package manager, without questions.

    Unless ``ctx.privileged``, a manager that needs root is refused here: asked as a
    user, apt-get only fails after a while with a less clear message.
    """
    _check_action("packages", action, PACKAGE_ACTIONS)
    if not names:
        raise BadArgument(f"packages {action}: name at least one package")
    for name in names:
        _not_an_option("packages", "package name", name)
    manager = package_manager(ctx)
    if manager.needs_root and not ctx.privileged:
        raise TaskError(
            f"packages: {action} with {manager.program} needs root, and pf runs as a user",
            hint="run pf as root, or add sudo=true to the command line",
        )
    words = manager.install if action == "install" else manager.remove
    argv = (manager.program, *words, *names)
    return Plan((Run(argv, ctx.cwd, {**ctx.env, **dict(manager.env)}),))


def service_plan(action: str, name: str, *, ctx: Context) -> Plan:
    """``systemctl ACTION NAME``; a machine without systemctl gets ToolMissing.

    Where systemctl exists but systemd is not PID 1 (containers), systemctl's own
    message ("System has not been booted with systemd") is the error the user sees.
    """
    _check_action("service", action, SERVICE_ACTIONS)
    if not name:
        raise BadArgument(f"service {action}: name the service")
    _not_an_option("service", "service name", name)
    systemctl = find_tool(SYSTEMCTL, ctx, "service")
    return Plan((ctx.command([systemctl, action, name]),))


def directory_plan(path: str, *, mode: int | None = None, ctx: Context) -> Plan:
    """``mkdir -p PATH`` (in-process), then chmod to ``mode`` when given."""
    if not path:
        raise BadArgument("directory: name the directory, as in `directory out mode=0755`")
    return Plan((MakeDir(ctx.resolve(path), mode),))


def copy_plan(
    src: str,
    dst: str,
    *,
    mode: int | None = None,
    user: str | None = None,
    group: str | None = None,
    ctx: Context,
) -> Plan:
    """Copy SRC (file or tree) to DST like ``cp -r`` (in-process), then chmod/chown."""
    if not src or not dst:
        raise BadArgument("copy: needs a source and a destination, as in `copy a.conf /etc/a`")
    return Plan((CopyPath(ctx.resolve(src), ctx.resolve(dst), mode, user, group),))


def sync_plan(
    src: str,
    dest: str,
    *,
    host: str | None = None,
    user: str | None = None,
    port: str | None = None,
    excludes: Sequence[str] = (),
    exclude_file: str | None = None,
    delete: bool = False,
    dry: bool = False,
    verbose: bool = False,
    ctx: Context,
) -> Plan:
    """``rsync -a`` SRC to DEST; with ``host`` DEST is ``[user@]host:dest`` over ssh.

    Paths go to rsync exactly as written, after ``--``: a trailing slash on SRC still
    means "the contents of", as rsync users expect.
    """
    if not src or not dest:
        raise BadArgument("sync: needs src= and dest=, as in `sync src=site/ dest=/srv/site`")
    rsync = find_tool(RSYNC, ctx, "sync")
    # Compression only pays over a network.
    argv = [rsync, "-az" if host else "-a"]
    if verbose:
        argv.append("-v")
    if dry:
        argv.append("--dry-run")
    if delete:
        argv.append("--delete")
    for pattern in excludes:
        argv += ["--exclude", pattern]
    if exclude_file:
        argv += ["--exclude-from", exclude_file]
    target = dest
    if host:
        _not_an_option("sync", "host", host)
        if user:
            _not_an_option("sync", "user", user)
        find_tool(SSH, ctx, "sync to a remote host")
        ssh = ["ssh"]
        if port:
            if not port.isdigit():
                raise BadArgument(f"sync: port must be a number, got {port!r}")
            ssh += ["-p", port]
        # ssh finds ~ in the password database; tasks on remote hosts read ~/.ssh from
        # $HOME (asyncssh): give ssh the same config, so both log in alike.
        config = ctx.resolve("~/.ssh/config") if ctx.env.get("HOME") else None
        if config is not None and config.is_file():
            ssh += ["-F", str(config)]
        if len(ssh) > 1:
            argv += ["-e", shlex.join(ssh)]
        target = f"{user}@{host}:{dest}" if user else f"{host}:{dest}"
    # `--`: a path that starts with '-' is a path, never one of rsync's options (an
    # `--rsh=` would run a command).
    return Plan((ctx.command([*argv, "--", src, target]),))


# --------------------------------------------------------------------- verb table


def _flag(args: Args, name: str, verb: str) -> bool:
    # `sync … delete dry` (bare words, the original form) or `delete=true`.
    return name in args.positional or parse_bool(verb, name, args.get(name))


def _verb_packages(words: Sequence[str], ctx: Context) -> Plan:
    if not words:
        raise BadArgument("packages: expected `packages install|remove NAMES`")
    return packages_plan(words[0], words[1:], ctx=ctx)


def _verb_service(words: Sequence[str], ctx: Context) -> Plan:
    if len(words) != 2:
        raise BadArgument("service: expected `service ACTION NAME`, as in `service restart nginx`")
    return service_plan(words[0], words[1], ctx=ctx)


def _verb_directory(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    path = args.get("path") or (args.positional[0] if args.positional else "")
    return directory_plan(path, mode=parse_mode("directory", args.get("mode")), ctx=ctx)


def _verb_copy(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    pos = args.positional
    return copy_plan(
        args.get("src") or (pos[0] if pos else ""),
        args.get("dest") or args.get("dst") or (pos[1] if len(pos) > 1 else ""),
        mode=parse_mode("copy", args.get("mode")),
        user=args.get("user"),
        group=args.get("group"),
        ctx=ctx,
    )


def _verb_sync(words: Sequence[str], ctx: Context) -> Plan:
    args = split_args(words)
    flags = {"delete", "dry", "verbose"}
    pos = [p for p in args.positional if p not in flags]
    return sync_plan(
        args.get("src") or (pos[0] if pos else ""),
        args.get("dest") or (pos[1] if len(pos) > 1 else ""),
        host=args.get("host"),
        user=args.get("user"),
        port=args.get("port"),
        excludes=parse_list(args.get("excludes")) + parse_list(args.get("exclude")),
        exclude_file=args.get("exclude_file"),
        delete=_flag(args, "delete", "sync"),
        dry=_flag(args, "dry", "sync"),
        verbose=_flag(args, "verbose", "sync"),
        ctx=ctx,
    )


# Pfyfile verb → planner.
VERBS: Mapping[str, VerbPlanner] = {
    "packages": _verb_packages,
    "service": _verb_service,
    "directory": _verb_directory,
    "copy": _verb_copy,
    "sync": _verb_sync,
}
