"""``pf token create NAME --scope read|build|admin``, ``pf token list``, ``pf token revoke NAME``.

Tokens live in the database pf serve uses (PF_DATABASE_URL, else ``.pf/pf.db``), so a
running server sees a new or revoked token within about a second. ``create`` prints the
token once, alone on stdout (``TOKEN=$(pf token create ci --scope build)``); only its
hash is kept.
"""

from __future__ import annotations

import sys
from datetime import datetime

from pf.cli._argparse import ArgumentParser
from pf.config import load_settings


def _parser() -> ArgumentParser:
    from pf.store.tokens import SCOPES

    parser = ArgumentParser(prog="pf token", description="Manage pf serve's API tokens.")
    commands = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = commands.add_parser(
        "create", help="make a token and print it (once)", description="Make a token."
    )
    create.add_argument("name", help="who or what holds it, e.g. ci or alice")
    create.add_argument(
        "--scope",
        required=True,
        choices=SCOPES,
        help="read: GET endpoints, artifacts, events; build: also builds and cancelling "
        "its own; admin: also tasks and cancelling any build",
    )
    commands.add_parser("list", help="list tokens (never their secrets)")
    revoke = commands.add_parser("revoke", help="revoke a token and its dashboard sessions")
    revoke.add_argument("name")
    return parser


def _when(at: float | None) -> str:
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M") if at else "never"


def command(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from pf.store import Database, TokenStore, default_url

    store = TokenStore(Database(default_url(load_settings())))
    store.open()
    if args.action == "create":
        token, secret = store.create(args.name, args.scope)
        print(secret)
        print(
            f"token {token.name!r} (scope {token.scope}) created: it is shown only this once",
            file=sys.stderr,
        )
    elif args.action == "list":
        tokens = store.list()
        if not tokens:
            print("no tokens (pf token create NAME --scope read|build|admin makes one)")
            return 0
        width = max(4, *(len(t.name) for t in tokens))
        print(f"{'NAME':<{width}}  SCOPE  {'CREATED':<16}  LAST USED")
        for t in tokens:
            created, used = _when(t.created_at), _when(t.last_used_at)
            print(f"{t.name:<{width}}  {t.scope:<5}  {created:<16}  {used}")
    else:
        store.revoke(args.name)
        print(f"token {args.name!r} revoked", file=sys.stderr)
    return 0
