"""Which project a request means (engine.catalog.Projects), on real directories."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pf.engine.catalog import ORIGINAL_DEFAULT, Projects
from pf.errors import NotFound, RequestError, UsageError


def projects(root: Path, *names: str) -> Projects:
    """A projects root holding one C project per name."""
    for name in names:
        (root / name / "c").mkdir(parents=True)
        (root / name / "c" / "add.c").write_text("int add(int a, int b) { return a + b; }\n")
    return Projects(root)


def test_a_named_project_is_found_whatever_the_default(tmp_path: Path) -> None:
    catalog = projects(tmp_path, "alpha", "beta", ORIGINAL_DEFAULT)
    assert catalog.get("beta").name == "beta"
    assert catalog.get("beta", default="alpha").name == "beta"
    with pytest.raises(
        NotFound, match=re.escape("Project not found: gamma. Available: alpha, beta")
    ):
        catalog.get("gamma")


def test_the_configured_default_comes_first(tmp_path: Path) -> None:
    catalog = projects(tmp_path, "alpha", "beta", ORIGINAL_DEFAULT)
    assert catalog.get(None, default="beta").name == "beta"
    with pytest.raises(NotFound, match="gamma"):
        catalog.get(None, default="gamma")


def test_the_originals_project_then_the_only_one(tmp_path: Path) -> None:
    assert projects(tmp_path / "a", "zeta", ORIGINAL_DEFAULT, "alpha").get(None).name == (
        ORIGINAL_DEFAULT
    )
    assert projects(tmp_path / "b", "solo").get(None).name == "solo"
    # A root that is itself a project is the only one.
    root = tmp_path / "c" / "demo"
    (root / "c").mkdir(parents=True)
    (root / "c" / "add.c").write_text("int add(int a, int b) { return a + b; }\n")
    assert Projects(root).get(None).name == "demo"


def test_several_projects_and_no_default_name_them_all(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="2 to choose from: alpha, beta") as refused:
        projects(tmp_path, "beta", "alpha").get(None)
    assert refused.value.hint is not None and "PF_DEFAULT_PROJECT" in refused.value.hint


def test_no_projects_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no projects under"):
        projects(tmp_path).get(None)


def test_check_default_names_the_projects(tmp_path: Path) -> None:
    catalog = projects(tmp_path, "alpha", "beta")
    catalog.check_default("alpha")
    with pytest.raises(UsageError, match="default project gamma") as refused:
        catalog.check_default("gamma")
    assert refused.value.hint == "projects: alpha, beta"
