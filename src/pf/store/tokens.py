"""API tokens and dashboard sessions: create, list, revoke and read them; SQLAlchemy Core only.

A token is ``pf_`` + ``secrets.token_urlsafe(32)`` (256 random bits), shown once when it
is made; the database keeps only its SHA-256. A slow password hash buys nothing for a
secret that cannot be guessed, and costs every request. A session (the dashboard's
cookie) is another random secret, stored the same way, that acts with its token's scope
until it expires or the token is revoked. Query functions take a Connection and return
frozen dataclasses; TokenStore runs each in its own transaction. Imports config, errors,
and this package's schema and db only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, insert, select, update

from pf.errors import PfError, UsageError
from pf.store.db import Database
from pf.store.schema import sessions, tokens

SCOPES = ("read", "build", "admin")  # each includes the rights of those before it
TOKEN_PREFIX = "pf_"
MAX_NAME = 64
# Sign-ins kept at once; past it the oldest go first, so the table stays small enough to
# be read whole into the server's cache.
MAX_SESSIONS = 1000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class TokenExists(UsageError):
    code = "token-exists"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"a token named {name!r} already exists",
            hint=f"choose another name, or revoke it first: pf token revoke {name}",
        )


class UnknownToken(PfError):
    code = "token-not-found"
    http_status = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"no token named {name!r}", hint="pf token list shows the tokens")


class UnknownScope(UsageError):
    code = "unknown-scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"unknown scope {scope!r}: choose one of {', '.join(SCOPES)}")


class InvalidTokenName(UsageError):
    code = "invalid-token-name"

    def __init__(self, name: str) -> None:
        super().__init__(
            f"invalid token name {name!r}: use up to {MAX_NAME} letters, digits, '.', '_' "
            "or '-', starting with a letter or digit"
        )


@dataclass(frozen=True)
class Token:
    """A token as listed: never its secret."""

    name: str
    scope: str
    created_at: float
    last_used_at: float | None


@dataclass(frozen=True)
class Session:
    """A live sign-in: whose token it acts for, with which scope, until when."""

    token: str
    scope: str
    expires_at: float


def digest(secret: str) -> str:
    """The SHA-256 (hex) under which a token's or session's secret is stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> None:
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise InvalidTokenName(name)


def check_scope(scope: str) -> None:
    if scope not in SCOPES:
        raise UnknownScope(scope)


def create(conn: Connection, name: str, scope: str, now: float) -> tuple[Token, str]:
    """A new token and its secret (the only time the secret exists outside its holder)."""
    check_name(name)
    check_scope(scope)
    if conn.execute(select(tokens.c.name).where(tokens.c.name == name)).first() is not None:
        raise TokenExists(name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    conn.execute(insert(tokens).values(name=name, scope=scope, hash=digest(secret), created_at=now))
    return Token(name, scope, now, None), secret


def list_all(conn: Connection) -> list[Token]:
    rows = conn.execute(
        select(tokens.c.name, tokens.c.scope, tokens.c.created_at, tokens.c.last_used_at).order_by(
            tokens.c.name
        )
    )
    return [Token(*row) for row in rows]


def revoke(conn: Connection, name: str) -> None:
    """Delete a token and every session made with it."""
    if conn.execute(delete(tokens).where(tokens.c.name == name)).rowcount == 0:
        raise UnknownToken(name)
    conn.execute(delete(sessions).where(sessions.c.token == name))


def by_hash(conn: Connection) -> dict[str, Token]:
    """Every token by the hash of its secret."""
    rows = conn.execute(
        select(
            tokens.c.hash, tokens.c.name, tokens.c.scope, tokens.c.created_at, tokens.c.last_used_at
        )
    )
    return {row[0]: Token(*row[1:]) for row in rows}


def touch(conn: Connection, used: Mapping[str, float]) -> None:
    """Record when tokens were last used (by name)."""
    for name, at in used.items():
        conn.execute(update(tokens).where(tokens.c.name == name).values(last_used_at=at))


def open_session(conn: Connection, token: str, ttl: float, now: float) -> tuple[Session, str]:
    """A new sign-in for ``token`` and its secret; expired and surplus sign-ins go first."""
    scope = conn.execute(select(tokens.c.scope).where(tokens.c.name == token)).scalar()
    if scope is None:
        raise UnknownToken(token)
    conn.execute(delete(sessions).where(sessions.c.expires_at <= now))
    count = conn.execute(select(func.count()).select_from(sessions)).scalar_one()
    if count >= MAX_SESSIONS:
        oldest = (
            select(sessions.c.hash)
            .order_by(sessions.c.created_at)
            .limit(count - MAX_SESSIONS + 1)
            .scalar_subquery()
        )
        conn.execute(delete(sessions).where(sessions.c.hash.in_(oldest)))
    secret = secrets.token_urlsafe(32)
    expires = now + ttl
    conn.execute(
        insert(sessions).values(
            hash=digest(secret), token=token, created_at=now, expires_at=expires
        )
    )
    return Session(token, scope, expires), secret


def close_session(conn: Connection, secret: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.hash == digest(secret)))


def live_sessions(conn: Connection, now: float) -> dict[str, Session]:
    """Every unexpired sign-in by the hash of its secret, with its token's current scope."""
    rows = conn.execute(
        select(sessions.c.hash, sessions.c.token, tokens.c.scope, sessions.c.expires_at)
        .join(tokens, tokens.c.name == sessions.c.token)
        .where(sessions.c.expires_at > now)
    )
    return {row[0]: Session(row[1], row[2], row[3]) for row in rows}


class TokenStore:
    """The token and session queries, one transaction each, on an open Database::

    store = TokenStore(Database(url))
    store.open()
    token, secret = store.create("ci", "build")
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    def open(self) -> None:
        self.db.open()

    def create(self, name: str, scope: str) -> tuple[Token, str]:
        with self.db.begin("cannot create a token") as conn:
            return create(conn, name, scope, time.time())

    def list(self) -> list[Token]:
        with self.db.begin("cannot list tokens") as conn:
            return list_all(conn)

    def revoke(self, name: str) -> None:
        with self.db.begin("cannot revoke a token") as conn:
            revoke(conn, name)

    def snapshot(self) -> tuple[dict[str, Token], dict[str, Session]]:
        """Tokens and live sessions by hash, read in one transaction."""
        with self.db.begin("cannot read tokens") as conn:
            return by_hash(conn), live_sessions(conn, time.time())

    def touch(self, used: Mapping[str, float]) -> None:
        with self.db.begin("cannot record token use") as conn:
            touch(conn, used)

    def open_session(self, token: str, ttl: float) -> tuple[Session, str]:
        with self.db.begin("cannot sign in") as conn:
            return open_session(conn, token, ttl, time.time())

    def close_session(self, secret: str) -> None:
        with self.db.begin("cannot sign out") as conn:
            close_session(conn, secret)
