"""``pf build``: the whole bundled demo, every language for every target (``make run``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import DEMO


def test_the_bundled_demo_builds_for_every_language_and_target(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pf", "build", str(DEMO), "-o", str(tmp_path / "web"), "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    built = {(r["language"], r["target"]) for r in records}
    languages, targets = ("rust", "c", "fortran", "wat"), ("wasm", "llvm", "asm")
    assert built == {(lang, target) for lang in languages for target in targets}
    suffixes = {"wasm": ".wasm", "llvm": ".ll", "asm": ".mjs"}
    for record in records:
        for output in record["outputs"]:
            path = Path(output)
            assert path.parent == tmp_path / "web" / record["target"] / record["language"]
            assert path.suffix == suffixes[record["target"]]
            assert path.stat().st_size > 0


def test_a_project_without_that_language_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "only.c").write_text("int one(void) { return 1; }\n")
    done = subprocess.run(
        [sys.executable, "-m", "pf", "build", str(tmp_path), "--language", "rust"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert f"project {tmp_path.name} has no rust sources" in done.stderr
    assert "hint: it has: c" in done.stderr
