"""Durable state: content-addressed blobs, build records and their logs, API tokens.

The database names are loaded on first use (PEP 562 ``__getattr__``): SQLAlchemy costs
~230 ms to import, and ``pf compile``, which only needs the blob store, must not pay it.
Imports config and errors only.
"""

import importlib

from pf.store.blobs import BlobStore, digest_bytes, digest_file

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pf.store.db import Database, default_url
    from pf.store.history import Store
    from pf.store.logs import LogBudget, LogLine
    from pf.store.record import BuildRecord
    from pf.store.tokens import Session, Token, TokenStore

del TYPE_CHECKING  # not a public name of this package

# public name -> module, imported when first asked for.
_LAZY: dict[str, str] = {
    "BuildRecord": "pf.store.record",
    "Database": "pf.store.db",
    "LogBudget": "pf.store.logs",
    "LogLine": "pf.store.logs",
    "Session": "pf.store.tokens",
    "Store": "pf.store.history",
    "Token": "pf.store.tokens",
    "TokenStore": "pf.store.tokens",
    "default_url": "pf.store.db",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pf.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BlobStore",
    "BuildRecord",
    "Database",
    "LogBudget",
    "LogLine",
    "Session",
    "Store",
    "Token",
    "TokenStore",
    "default_url",
    "digest_bytes",
    "digest_file",
]
