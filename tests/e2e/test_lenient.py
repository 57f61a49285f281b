"""Broken files beside good ones, tolerated constructs, ``pf check``, ``pf list --json``."""

from __future__ import annotations

import json

from tests.e2e.conftest import Project

GOOD = """
task hello who="you" [alias hi]
  describe Say hello
  describe to someone
  shell echo hello $who
end
"""
BROKEN = """
task build
  include other.pf
end
"""
INCLUDE_IN_TASK = """\
error: `include` is only allowed at the top level, not inside task `build`
 --> Pfyfile.web.pf:2:3
  |
2 |   include other.pf
  |   ^^^^^^^
  = hint: move it above or below the task
"""


def test_a_broken_group_file_leaves_the_others_listed_and_running(project: Project) -> None:
    project.pfyfile(GOOD)
    project.pfyfile(BROKEN, "Pfyfile.web.pf")
    project.pfyfile("task deploy\n  needs hello\n  shell echo deploy\nend\n", "Pfyfile.ops.pf")
    for _ in range(2):  # the second from the listing cache, were it written
        listed = project.run("list")
        assert listed.returncode == 0
        assert "hello who=you" in listed.stdout and "deploy" in listed.stdout
        assert "build" not in listed.stdout
        assert listed.stderr == INCLUDE_IN_TASK
    ran = project.run("ops", "deploy")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "hello you\ndeploy\n"
    assert INCLUDE_IN_TASK not in ran.stderr  # a run shows only what concerns it


def test_running_a_task_of_the_broken_file_names_its_error(project: Project) -> None:
    project.pfyfile(GOOD)
    project.pfyfile(BROKEN, "Pfyfile.web.pf")
    for args in (["web", "build"], ["web:build"], ["help", "web", "build"], ["list", "web"]):
        ran = project.run(*args)
        assert ran.returncode == 2
        assert ran.stderr == INCLUDE_IN_TASK
        assert ran.stdout == ""


def test_a_broken_main_file_still_lists_its_groups_and_fails_list(project: Project) -> None:
    project.pfyfile(BROKEN)
    project.pfyfile(GOOD, "Pfyfile.web.pf")
    listed = project.run("list")
    assert listed.returncode == 2
    assert "group web" in listed.stdout and "hello" in listed.stdout
    assert " --> Pfyfile.pf:2:3" in listed.stderr
    assert project.run("web", "hello").stdout == "hello you\n"
    ran = project.run("build")
    assert ran.returncode == 2 and " --> Pfyfile.pf:2:3" in ran.stderr
    # A built-in command the broken file does not define a task for still runs.
    assert project.run("toolchains", "--json").returncode == 0


def test_tolerated_constructs_load_with_warnings(project: Project) -> None:
    project.pfyfile(
        """
        image ubuntu:22.04
        shell echo never
        [alias top]
        task a
          shell echo first
        end
        task a
          [alias b]
          shell echo second
        end
        task last
          shell echo last
        """
    )
    listed = project.run("list")
    assert listed.returncode == 0
    assert listed.stdout.split() == ["Pfyfile.pf", "a", "[alias", "b]", "last"]
    lines = [line.strip() for line in listed.stderr.splitlines()]
    warnings = [line for line in lines if line.startswith(("warning", "-->"))]
    assert warnings == [
        "warning: `image` is not a pf statement and is ignored",
        "--> Pfyfile.pf:1:1",
        "warning: `shell` outside any task is ignored",
        "--> Pfyfile.pf:2:1",
        "warning: an alias list outside any task is ignored",
        "--> Pfyfile.pf:3:1",
        "warning: `a` is defined again in the main scope; this later definition is used",
        "--> Pfyfile.pf:7:6",
        "--> Pfyfile.pf:4:6",
        "warning: task `last` has no `end`; it runs to the end of the file",
        "--> Pfyfile.pf:11:1",
    ]
    ran = project.run("b", "last")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "second\nlast\n"
    assert "warning" not in ran.stderr


def test_check_exits_1_on_any_warning_or_error_and_0_when_clean(project: Project) -> None:
    project.pfyfile(GOOD)
    clean = project.run("check")
    assert (clean.returncode, clean.stdout, clean.stderr) == (0, "", "pf check: 1 file ok\n")
    project.pfyfile(BROKEN, "Pfyfile.web.pf")
    broken = project.run("check")
    assert broken.returncode == 1
    assert broken.stderr == INCLUDE_IN_TASK + "pf check: 1 error, 0 warnings\n"
    project.write("other.pf", "task x\n  shell echo\n")
    named = project.run("check", "other.pf", "Pfyfile.pf")
    assert named.returncode == 1
    assert named.stderr.splitlines()[:2] == [
        "warning: task `x` has no `end`; it runs to the end of the file",
        " --> other.pf:1:1",
    ]
    assert named.stderr.endswith("pf check: 0 errors, 1 warning\n")
    assert project.run("check", "Pfyfile.pf").returncode == 0  # a file named: no siblings


def test_a_check_task_of_the_pfyfile_wins_over_the_command(project: Project) -> None:
    project.pfyfile("task check\n  shell echo mine\nend\n")
    assert project.run("check").stdout == "mine\n"


def test_list_json_shape(project: Project) -> None:
    project.pfyfile(GOOD + "task all\n  needs hi web:build\nend\n")
    project.pfyfile("task build opt=2\nend\n", "Pfyfile.web.pf")
    listed = project.run("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == ""
    data = json.loads(listed.stdout)
    main, web = str(project.root / "Pfyfile.pf"), str(project.root / "Pfyfile.web.pf")
    assert data == [
        {
            "name": "hello",
            "group": None,
            "file": main,
            "line": 1,
            "description": "Say hello\nto someone",
            "params": {"who": "you"},
            "aliases": ["hi"],
            "needs": [],
        },
        {
            "name": "all",
            "group": None,
            "file": main,
            "line": 6,
            "description": None,
            "params": {},
            "aliases": [],
            "needs": ["hello", "web:build"],
        },
        {
            "name": "build",
            "group": "web",
            "file": web,
            "line": 1,
            "description": None,
            "params": {"opt": "2"},
            "aliases": [],
            "needs": [],
        },
    ]
    assert list(data[0]) == [
        "name", "group", "file", "line", "description", "params", "aliases", "needs"
    ]  # fmt: skip


def test_list_json_keeps_broken_files_on_stderr(project: Project) -> None:
    project.pfyfile(GOOD)
    project.pfyfile(BROKEN, "Pfyfile.web.pf")
    listed = project.run("list", "--json")
    assert listed.returncode == 0
    assert [t["name"] for t in json.loads(listed.stdout)] == ["hello"]
    assert listed.stderr == INCLUDE_IN_TASK


def test_hyphenated_parameters_reach_shell_lines_and_verbs(project: Project) -> None:
    project.pfyfile(
        """
        task conn remote-addr="10.0.0.1" port=22
          shell echo "$remote-addr:$port ${remote-addr}"
          directory out/$remote-addr
        end
        """
    )
    ran = project.run("conn")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "10.0.0.1:22 10.0.0.1\n"
    assert (project.root / "out" / "10.0.0.1").is_dir()
    given = project.run("conn", "remote-addr=h", "--port", "2")
    assert given.stdout == "h:2 h\n"
    checked = project.run("check")
    assert checked.returncode == 1
    assert checked.stderr.startswith("warning: parameter `remote-addr` is not an sh name\n")


def test_bare_commands_and_unsupported_helpers_list_but_never_run(project: Project) -> None:
    project.pfyfile(
        """
        task setup
          shell echo before
          touch made-by-a-bare-line
          shell echo never
        end
        task box
          containerize
        end
        task fine
          shell echo fine
        end
        """
    )
    listed = project.run("list")
    assert listed.returncode == 0
    assert listed.stdout.split() == ["Pfyfile.pf", "setup", "box", "fine"]
    assert "warning: `touch` is not a pf verb: this line is not run\n" in listed.stderr
    assert "  = hint: to run it in bash, write `shell touch made-by-a-bare-line`\n" in (
        listed.stderr
    )
    checked = project.run("check")
    assert checked.returncode == 1
    assert checked.stderr.endswith("pf check: 0 errors, 2 warnings\n")
    assert project.run("fine").stdout == "fine\n"
    ran = project.run("setup")
    assert (ran.returncode, ran.stdout) == (2, "before\n")
    assert not (project.root / "made-by-a-bare-line").exists()
    assert ran.stderr.splitlines()[1:7] == [
        "error: `touch` is not a pf verb: this line is not run",
        " --> Pfyfile.pf:3:3",
        "  |",
        "3 |   touch made-by-a-bare-line",
        "  |   ^^^^^",
        "  = hint: to run it in bash, write `shell touch made-by-a-bare-line`",
    ]
    assert ran.stderr.splitlines()[7] == "note: in task `setup`"
    boxed = project.run("box")
    assert boxed.returncode == 2
    assert boxed.stderr.splitlines()[0] == (
        "error: `containerize` is a helper of the original pf that pf does not support"
    )


def test_packages_without_an_action_install_and_name_a_missing_package_manager(
    project: Project,
) -> None:
    project.pfyfile("task deps\n  packages git curl\nend\n")
    checked = project.run("check")
    assert checked.stderr.splitlines()[:2] == [
        "warning: `packages` without `install` or `remove` installs `git curl`",
        " --> Pfyfile.pf:2:12",
    ]
    # No package manager on this PATH: nothing is installed, and pf says why.
    ran = project.run("deps", env={"PATH": str(project.root)})
    assert ran.returncode == 1
    assert ran.stderr.splitlines()[:2] == [
        "error: packages: no system package manager found on PATH",
        "hint: pf looks for apt-get, dnf, yum, zypper, pacman, apk, brew; "
        "install the packages by hand on this machine",
    ]
