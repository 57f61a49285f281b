"""The docs a person who clones pf reads: links (and their #anchors) resolve inside the
repository, nothing names a document outside it or a tracker's number, and
docs/configuration.md lists every setting pf reads, each where it is really read."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pf.config import environment_names

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and <img src="target">, not inside code spans.
_LINK = re.compile(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"")
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _links(page: Path) -> list[str]:
    text = _CODE.sub("", page.read_text())
    return [a or b for a, b in _LINK.findall(text)]


def _anchors(page: Path) -> set[str]:
    """The anchors a Markdown renderer gives the page's headings (GitHub's rule)."""
    headings = re.findall(r"^#{1,6} (.+)$", _CODE.sub("", page.read_text()), re.M)
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves_inside_the_repository(page: Path) -> None:
    for link in _links(page):
        if re.match(r"[a-z]+:", link):
            continue  # http(s)://, mailto:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        assert target.is_relative_to(ROOT), f"{page.name}: {link} leads out of the repository"
        assert target.exists(), f"{page.name}: {link} does not exist"
        if anchor and target.suffix == ".md":
            assert anchor in _anchors(target), f"{page.name}: {link} names no heading there"


def _configuration_rows() -> dict[str, str]:
    rows = {}
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        match = re.match(r"\| `(PFY?_[A-Z_<>]+)` \|", line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_configuration_lists_every_setting_and_nothing_else() -> None:
    rows = _configuration_rows()
    settings = set(environment_names().values())
    assert settings - set(rows) == set(), "settings missing from docs/configuration.md"
    assert set(rows) - settings == {"PF_TOOL_<NAME>"}, "docs name settings pf does not read"


def test_configuration_names_modules_that_exist() -> None:
    for env_name, line in _configuration_rows().items():
        modules = re.findall(r"`([a-z_/]+\.py)`", line)
        assert modules, f"{env_name}: no 'read by' module"
        for module in modules:
            assert (ROOT / "src" / "pf" / module).exists(), f"{env_name}: {module} is not in src/pf"


# Documents kept outside the repository, which a person who clones pf never has.
_OUTSIDE = re.compile(r"\b(?:DESIGN|PFYFILE|TOOLCHAINS|STYLE|VERIFIED|API)\.md\b|\.\./shared/")


def test_nothing_refers_to_documents_outside_the_repository() -> None:
    tracked = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in tracked
        if name and (ROOT / name).is_file() and name != "tests/test_docs.py"
        for number, line in enumerate(
            (ROOT / name).read_text(errors="replace").splitlines(), start=1
        )
        if _OUTSIDE.search(line)
    ]
    assert not found, "say it here or point into docs/:\n" + "\n".join(found)


# "issue 12", "#12", "ticket 3": a number in a tracker a reader of the code may not have.
_TRACKER = re.compile(r"\b(?:issue|ticket|bug)s? ?#?\d+\b|(?:^|[\s(\[])#\d{1,5}\b", re.I)


def test_no_comment_cites_a_tracker_number() -> None:
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "src", "tests", "bench", "scripts", "Makefile", "*.toml"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    found = [
        f"{name}:{number}: {line.strip()}"
        for name in tracked
        if name.endswith((".py", ".sh", ".js", ".toml", ".c", "Makefile"))
        and name != "tests/test_docs.py"
        for number, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1)
        if _TRACKER.search(line)
    ]
    assert not found, "say the reason instead:\n" + "\n".join(found)
