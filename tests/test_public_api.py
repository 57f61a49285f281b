"""The curated public surfaces cannot drift: __all__ names exactly what each package offers."""

from __future__ import annotations

import types

import pytest

import pf
import pf.engine
import pf.sandbox
import pf.store
import pf.toolchains


@pytest.mark.parametrize("module", [pf, pf.engine, pf.sandbox, pf.store, pf.toolchains])
def test_all_is_sorted_complete_and_resolvable(module: types.ModuleType) -> None:
    exported = list(module.__all__)
    assert len(exported) == len(set(exported))
    assert all(hasattr(module, name) for name in exported)
    own_definitions = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and str(getattr(value, "__module__", "")).startswith(module.__name__)
    }
    assert own_definitions <= set(exported)
