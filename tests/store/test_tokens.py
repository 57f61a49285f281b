"""API tokens and dashboard sessions on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import pytest

from pf.store import TokenStore
from pf.store.db import Database
from pf.store.tokens import TokenExists, UnknownToken, digest


def test_tokens_and_sessions_live_and_end_in_the_database(database_url: str) -> None:
    db = Database(database_url)
    store = TokenStore(db)
    store.open()
    try:
        token, secret = store.create("ci", "build")
        with pytest.raises(TokenExists):
            store.create("ci", "read")
        assert [t.name for t in store.list()] == ["ci"]
        session, cookie = store.open_session("ci", ttl=60.0)
        by_hash, sessions = store.snapshot()
        assert by_hash[digest(secret)] == token
        assert sessions[digest(cookie)] == session
        store.touch({"ci": 123.0})
        assert store.list()[0].last_used_at == 123.0
        store.close_session(cookie)
        assert store.snapshot()[1] == {}
        store.revoke("ci")
        with pytest.raises(UnknownToken):
            store.revoke("ci")
        assert store.list() == []
    finally:
        db.close()
