"""Up-to-date checks: ``sources``/``generates`` skip a task whose inputs are unchanged."""

from __future__ import annotations

import json

from tests.e2e.conftest import Project

PFYFILE = """
task bundle mode="plain"
  sources src/*.txt
  generates dist/bundle.txt
  shell mkdir -p dist && cat src/*.txt > dist/bundle.txt && echo "bundled $mode"
end
task after
  needs bundle
  shell echo after
end
"""


def _setup(project: Project) -> None:
    project.pfyfile(PFYFILE)
    project.write("src/a.txt", "alpha\n")
    project.write("src/b.txt", "beta\n")


def test_second_run_is_skipped_and_a_changed_byte_reruns(project: Project) -> None:
    _setup(project)
    first = project.run("bundle")
    assert first.returncode == 0, first.stderr
    assert first.stdout == "bundled plain\n"
    second = project.run("bundle")
    assert second.stdout == ""
    assert "pf: `bundle` is up to date" in second.stderr
    assert "pf: 0 run, 1 skipped (up to date), 0 failed" in second.stderr

    # Rewriting the same bytes (a new mtime) is not a change: checksums, not mtimes.
    (project.root / "src" / "a.txt").write_text("alpha\n")
    assert project.run("bundle").stdout == ""
    # One byte differs: it runs again.
    (project.root / "src" / "a.txt").write_text("alphA\n")
    assert project.run("bundle").stdout == "bundled plain\n"
    assert project.run("bundle").stdout == ""


def test_params_force_missing_outputs_and_new_sources_rerun(project: Project) -> None:
    _setup(project)
    assert project.run("bundle").stdout == "bundled plain\n"
    assert project.run("bundle", "mode=fancy").stdout == "bundled fancy\n"
    assert project.run("bundle", "mode=fancy").stdout == ""
    assert project.run("--force", "bundle", "mode=fancy").stdout == "bundled fancy\n"
    assert project.run("bundle", "--force", "mode=fancy").stdout == "bundled fancy\n"
    (project.root / "dist" / "bundle.txt").unlink()
    assert project.run("bundle", "mode=fancy").stdout == "bundled fancy\n"
    project.write("src/c.txt", "gamma\n")
    assert project.run("bundle", "mode=fancy").stdout == "bundled fancy\n"


def test_changed_commands_rerun_and_dependents_still_run(project: Project) -> None:
    _setup(project)
    assert project.run("after").stdout == "bundled plain\nafter\n"
    done = project.run("after")
    assert done.stdout == "after\n"
    assert "pf: 1 run, 1 skipped (up to date), 0 failed" in done.stderr
    project.pfyfile(PFYFILE.replace('echo "bundled $mode"', 'echo "bundled again $mode"'))
    assert project.run("bundle").stdout == "bundled again plain\n"


def test_state_lives_under_dot_pf_beside_the_pfyfile(project: Project) -> None:
    _setup(project)
    sub = project.root / "src"
    done = project.run("bundle", cwd=sub)  # found in the parent; runs in its directory
    assert done.returncode == 0, done.stderr
    state = json.loads((project.root / ".pf" / "tasks-state.json").read_text())
    assert list(state["tasks"]) == ["bundle"]
    assert len(state["tasks"]["bundle"]["digest"]) == 64
    # A damaged state file only means the task runs again.
    (project.root / ".pf" / "tasks-state.json").write_text("{not json")
    assert project.run("bundle").stdout == "bundled plain\n"
    assert project.run("bundle").stdout == ""


def test_a_failed_run_is_not_recorded(project: Project) -> None:
    project.pfyfile(
        """
        task flaky
          sources in.txt
          shell cat in.txt; grep -q ok in.txt
        end
        """
    )
    project.write("in.txt", "bad\n")
    assert project.run("flaky").returncode == 1
    assert project.run("flaky").stdout == "bad\n"  # still runs: the failure was not recorded
