"""pf.dsl's public surface cannot drift, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys
import types

import pf.dsl


def test_all_is_complete_and_resolvable() -> None:
    exported = list(pf.dsl.__all__)
    assert len(exported) == len(set(exported))
    assert all(hasattr(pf.dsl, name) for name in exported)
    public = {
        name
        for name, value in vars(pf.dsl).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public == set(exported)


def test_dsl_imports_no_process_or_heavy_modules() -> None:
    code = (
        "import sys, pf.dsl; "
        "print(','.join(m for m in ('subprocess', 'dataclasses', 'pathlib', 're', 'pf.tasks', "
        "'pf.engine', 'pf.sandbox') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    heavy = set(filter(None, out.stdout.strip().split(",")))
    # pf.errors (not ours) may pull in dataclasses and re; pf.dsl adds nothing of processes.
    assert not heavy & {"subprocess", "pathlib", "pf.tasks", "pf.engine", "pf.sandbox"}
