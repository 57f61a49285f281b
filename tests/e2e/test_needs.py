"""``needs``: dependencies first, each task once, independent ones in parallel with ``-j``."""

from __future__ import annotations

from tests.e2e.conftest import Project

# Each side marks that it started, then waits (up to `wait` x 50 ms) for the other's
# mark: both see each other only if they ran at the same time. A barrier, not a clock.
BARRIER = """
task left wait="200"
  shell touch left.started; for i in $(seq $wait); do [ -e right.started ] && break; \\
      sleep 0.05; done; [ -e right.started ] && echo "left saw right" || echo "left alone"
end
task right wait="200"
  shell touch right.started; for i in $(seq $wait); do [ -e left.started ] && break; \\
      sleep 0.05; done; [ -e left.started ] && echo "right saw left" || echo "right alone"
end
task both
  needs left right
  shell echo both-done
end
"""


def test_j2_runs_independent_needs_at_the_same_time(project: Project) -> None:
    project.pfyfile(BARRIER)
    done = project.run("-j", "2", "both")
    assert done.returncode == 0, done.stderr
    lines = sorted(done.stdout.splitlines())
    assert lines == ["[both] both-done", "[left] left saw right", "[right] right saw left"]
    assert done.stdout.splitlines()[-1] == "[both] both-done"  # after both needs
    assert "pf: 3 run, 0 skipped (up to date), 0 failed" in done.stderr


def test_without_j_needs_run_one_after_another(project: Project) -> None:
    project.pfyfile(BARRIER.replace('wait="200"', 'wait="2"'))
    done = project.run("both")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "left alone\nright saw left\nboth-done\n"


def test_each_task_runs_once_dependencies_first(project: Project) -> None:
    project.pfyfile(
        """
        task base
          shell echo base
        end
        task left
          needs base
          shell echo left
        end
        task right
          needs base
          shell echo right
        end
        task top
          needs left right base
          shell echo top
        end
        """
    )
    done = project.run("top", "left")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "base\nleft\nright\ntop\n"
    done = project.run("-j", "3", "top")
    assert sorted(done.stdout.splitlines()) == [
        "[base] base",
        "[left] left",
        "[right] right",
        "[top] top",
    ]
    assert done.stdout.splitlines()[0] == "[base] base"
    assert done.stdout.splitlines()[-1] == "[top] top"


def test_a_failing_dependency_stops_the_run(project: Project) -> None:
    project.pfyfile(
        """
        task bad
          shell echo bad; exit 5
        end
        task good
          shell sleep 0.3; echo good
        end
        task top
          needs good bad
          shell echo top
        end
        """
    )
    done = project.run("top")
    assert done.returncode == 5
    assert done.stdout == "good\nbad\n"
    assert "task `bad` failed" in done.stderr
    assert "pf: 1 run, 0 skipped (up to date), 1 failed" in done.stderr
    done = project.run("-j", "2", "top")
    assert done.returncode == 5
    assert "[top]" not in done.stdout


def test_needs_across_groups(project: Project) -> None:
    project.pfyfile("task setup\n  shell echo setup\nend\n")
    project.write(
        "Pfyfile.web.pf",
        """
        task prepare
          shell echo web-prepare
        end
        task build
          needs setup prepare
          shell echo web-build
        end
        """,
    )
    done = project.run("web", "build")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "setup\nweb-prepare\nweb-build\n"
