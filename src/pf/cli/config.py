"""``pf config``: every effective setting, its environment variable, and where it came from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pf.cli._argparse import ArgumentParser
from pf.cli.output import style
from pf.config import Settings, environment_names, load_settings

_URLS = ("database_url", "redis_url")


def _shown(value: Any) -> Any:
    """A value as JSON shows it: paths as text, tuples as lists; None stays unset."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _without_password(url: str) -> str:
    """A database or Redis URL with its password (if any) replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def rows(settings: Settings) -> list[dict[str, Any]]:
    """One row per setting, then one per tool pin (PF_TOOL_*), in the order pf reads them."""
    table = [
        {
            "name": name,
            "env": env_name,
            "value": _shown(getattr(settings, name)),
            "origin": "environment" if settings.origin(name) == env_name else settings.origin(name),
        }
        for name, env_name in environment_names().items()
    ]
    # The URLs may carry a password: pf config output is meant to be pasted into reports.
    for row in table:
        if row["name"] in _URLS and row["value"] is not None:
            row["value"] = _without_password(row["value"])
    for tool, path in sorted(settings.tools.items()):
        env_name = "PF_TOOL_" + tool.upper().replace("-", "_")
        table.append(
            {"name": f"tools.{tool}", "env": env_name, "value": path, "origin": "environment"}
        )
    return table


def _text(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def command(argv: list[str]) -> int:
    parser = ArgumentParser(
        prog="pf config",
        description="Print every setting pf would use here: its value, the environment "
        "variable that sets it, and where the value came from (default, pf.toml, or the "
        "environment). Precedence, lowest first: default < pf.toml < environment.",
    )
    parser.add_argument("--json", action="store_true", help="print the settings as JSON")
    args = parser.parse_args(argv)
    table = rows(load_settings())
    if args.json:
        print(json.dumps(table, indent=2))
        return 0
    width = max(len(row["env"]) for row in table)
    for row in table:
        origin = row["origin"]
        where = style(origin, "dim") if origin == "default" else style(origin, "green")
        print(f"{row['env']:<{width}}  {_text(row['value'])}  ({where})")
    return 0
