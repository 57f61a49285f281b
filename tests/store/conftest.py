"""The store tests' fixture: a Store open on each backend of ``database_url``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pf.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = Store(database_url)
    opened.open()
    yield opened
    opened.close()
