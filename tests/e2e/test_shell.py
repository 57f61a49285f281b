"""``shell`` lines, values and parameters, through the real ``pf``."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.e2e.conftest import PF, Project


def test_shell_goes_to_bash_unchanged_pipes_and_defaults(project: Project) -> None:
    project.pfyfile(
        """
        task pipe
          shell echo "a b c" | tr ' ' '\\n' | sort -r | head -n 2 && echo "${unset_var:-fallback}"
          shell x=1; [ "$x" = 1 ] && echo "${x:+set}" > out.txt; cat out.txt
          shell echo "$(echo sub)shell" 2>/dev/null || echo never
        end
        """
    )
    done = project.run("pipe")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "c\nb\nfallback\nset\nsubshell\n"
    # Each command is echoed before it runs, on stderr, as written.
    assert "$ echo \"a b c\" | tr ' ' '\\n' | sort -r | head -n 2 && " in done.stderr
    assert done.stderr.rstrip().splitlines()[-1].startswith("pf: 1 run, 0 skipped (up to date)")


def test_continuation_comments_and_heredoc(project: Project) -> None:
    project.pfyfile(
        """
        # a comment
        task cont
          # inside too
          shell echo one \\
              two \\
              three
          shell << EOF
            for i in 1 2; do
              echo "line $i"
            done
          EOF
        end
        """
    )
    done = project.run("cont")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "one two three\nline 1\nline 2\n"


def test_a_shell_block_is_one_script_in_the_tasks_shell(project: Project) -> None:
    project.pfyfile(
        """
        task block who="you"
          shell |
            greet() { echo "hello $1"; }
            for i in 1 2; do
              greet "$who $i"
            done

            cd sub 2>/dev/null || echo "one script: cd and state carry over"
          shell_lang python
          shell |
            import os
            print("python sees", os.environ["who"])
          shell_lang default
          shell echo back in bash
        end
        """
    )
    done = project.run("block")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "hello you 1\nhello you 2\none script: cd and state carry over\n"
        "python sees you\nback in bash\n"
    )
    # Echoed as one command: its first line, then continuation lines.
    assert '$ greet() { echo "hello $1"; }\n> for i in 1 2; do\n' in done.stderr


def test_plain_heredocs_are_shell_text_up_to_their_terminator(project: Project) -> None:
    project.pfyfile(
        """
        shell cat << 'EOF' > ignored.txt
          task inside-an-ignored-heredoc
        EOF
        task gen who="pf"
          shell cat << 'EOF' > literal.txt
            $who is not expanded
          EOF
          shell python3 - <<PYEOF > out.txt
          print("python", "$who")
          PYEOF
          shell cat literal.txt out.txt
        end
        """
    )
    done = project.run("gen")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "$who is not expanded\npython pf\n"
    assert not (project.root / "ignored.txt").exists()
    assert project.run("list").stdout.split() == ["Pfyfile.pf", "gen", "who=pf"]


@pytest.mark.parametrize(
    "args",
    [
        ["show", "level=3", "name=x y"],
        ["show", "--level=3", "--name=x y"],
        ["show", "--level", "3", "--name", "x y"],
        ["show", "-l", "3", "--name", "x y"],
    ],
    ids=["key=value", "--key=value", "--key value", "-k value"],
)
def test_the_four_parameter_forms_are_equivalent(project: Project, args: list[str]) -> None:
    project.pfyfile(
        """
        task show l level="1" name="n"
          shell echo "level=$level name=$name l=${l:-unset}"
        end
        """
    )
    done = project.run(*args)
    assert done.returncode == 0, done.stderr
    if args[1] == "-l":
        assert done.stdout == "level=1 name=x y l=3\n"
    else:
        assert done.stdout == "level=3 name=x y l=unset\n"


def test_defaults_and_precedence(project: Project) -> None:
    project.pfyfile(
        """
        env FROM_FILE=file SHARED=file OPT=file
        task order opt="default" only_default="d" [alias o]
          env SHARED=task opt=task-env
          shell echo "$FROM_PROC $FROM_FILE $SHARED $opt $only_default $OPT"
        end
        task bare
          shell echo "proc=$SHARED"
        end
        """
    )
    env = {"FROM_PROC": "proc", "SHARED": "proc", "OPT": "proc"}
    # process < file env < header default < task env < command line
    done = project.run("order", env=env)
    assert done.stdout == "proc file task task-env d file\n", done.stderr
    done = project.run("o", "opt=cli", env=env)
    assert done.stdout == "proc file task cli d file\n", done.stderr
    done = project.run("bare", env=env)
    assert done.stdout == "proc=file\n"


def test_defaults_interpolate_and_non_shell_verbs_interpolate(project: Project) -> None:
    project.pfyfile(
        """
        env BASE=out
        task mk name="demo" dir="${BASE}/$name"
          directory $dir/sub mode=0750
          shell ls -ld $dir/sub | cut -c1-10; echo "$$HOME stays literal in pf" > /dev/null
        end
        """
    )
    done = project.run("mk", "name=x")
    assert done.returncode == 0, done.stderr
    assert (project.root / "out" / "x" / "sub").is_dir()
    assert done.stdout == "drwxr-x---\n"
    assert "$ mkdir -p -m 750" in done.stderr


def test_several_tasks_in_one_call_run_in_order(project: Project) -> None:
    project.pfyfile(
        """
        task a x="0"
          shell echo "a x=$x"
        end
        task b
          shell echo b
        end
        """
    )
    done = project.run("a", "x=1", "b", "a", "x=2")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a x=1\nb\na x=2\n"
    assert "pf: 3 run, 0 skipped (up to date), 0 failed" in done.stderr


def test_a_failing_command_stops_the_run_with_its_exit_code(project: Project) -> None:
    project.pfyfile(
        """
        task first
          shell echo before
          shell exit 7
          shell echo never
        end
        task second
          shell echo never-either
        end
        """
    )
    done = project.run("first", "second")
    assert done.returncode == 7
    assert done.stdout == "before\n"
    assert "error: task `first` failed: a command exited with code 7" in done.stderr
    assert "--> Pfyfile.pf:3:3" in done.stderr
    assert "3 |   shell exit 7" in done.stderr
    assert "pf: 0 run, 0 skipped (up to date), 1 failed" in done.stderr


def test_output_is_live_not_buffered_to_the_end(project: Project) -> None:
    # The first line must reach pf's stdout while the command is still running: the
    # command waits until a file appears that only a reader of that line creates.
    project.pfyfile(
        """
        task live
          shell echo first; for i in $(seq 400); do [ -e seen ] && break; sleep 0.05; done; \\
              [ -e seen ] && echo second || echo timeout
        end
        """
    )
    with subprocess.Popen(
        [PF, "live"], cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first\n"
        (project.root / "seen").touch()
        assert proc.stdout.readline() == "second\n"
        assert proc.wait(timeout=30) == 0


def test_unknown_task_suggests_and_exits_2(project: Project) -> None:
    project.pfyfile(
        """
        task build
          shell echo hi
        end
        """
    )
    done = project.run("biuld")
    assert done.returncode == 2
    assert done.stderr == "error: unknown task `biuld`\nhint: did you mean `build`?\n"
    assert done.stdout == ""


def test_unknown_option_and_misplaced_parameter_are_usage_errors(project: Project) -> None:
    project.pfyfile("task t\n  shell echo t\nend\n")
    done = project.run("--frce", "t")
    assert done.returncode == 2
    assert "unknown option `--frce`" in done.stderr and "did you mean `--force`?" in done.stderr
    done = project.run("x=1", "t")
    assert done.returncode == 2
    assert "parameter `x=1` comes before any task name" in done.stderr


def test_a_parameter_typo_warns(project: Project) -> None:
    project.pfyfile('task t opt_level="2"\n  shell echo "$opt_level"\nend\n')
    done = project.run("t", "opt_levl=3")
    assert done.returncode == 0
    assert done.stdout == "2\n"
    assert "has no parameter `opt_levl` (did you mean `opt_level`?)" in done.stderr


def test_parse_errors_are_rendered_with_the_line_and_never_a_traceback(project: Project) -> None:
    project.pfyfile(
        """
        task build
          include other.pf
        end
        """
    )
    done = project.run("build")
    assert done.returncode == 2
    assert done.stderr == (
        "error: `include` is only allowed at the top level, not inside task `build`\n"
        " --> Pfyfile.pf:2:3\n"
        "  |\n"
        "2 |   include other.pf\n"
        "  |   ^^^^^^^\n"
        "  = hint: move it above or below the task\n"
    )
    assert "Traceback" not in done.stderr


def test_missing_end_points_at_the_opening_line(project: Project) -> None:
    project.pfyfile(
        """
        task a
          if $x
            shell echo a
        end
        """
    )
    # The `end` closes the `if`; the task, open at the end of the file, is accepted
    # as the original did, with a warning at its opening line.
    done = project.run("list")
    assert done.returncode == 0
    assert "warning: task `a` has no `end`; it runs to the end of the file" in done.stderr
    assert "--> Pfyfile.pf:1:1" in done.stderr
    project.pfyfile("task a\n  if $x\n    shell echo a\n")
    done = project.run("list")
    assert done.returncode == 2
    assert "error: `if` is never closed" in done.stderr
    assert "--> Pfyfile.pf:2:3" in done.stderr


def test_a_missing_tool_is_named_with_its_install_command(project: Project) -> None:
    project.pfyfile(
        """
        task p
          env PATH=/nonexistent
          shell [lang:perl] print "hi\\n";
        end
        """
    )
    done = project.run("p")
    assert done.returncode == 3
    assert "error: perl: not found on PATH (needed for shell [lang:perl])" in done.stderr
    assert "hint: install it with: apt-get install -y perl" in done.stderr
    assert "note: in task `p`" in done.stderr and "--> Pfyfile.pf:3:3" in done.stderr


def test_sudo_wraps_each_command_and_names_sudo_when_missing(project: Project) -> None:
    # A PATH holding only bash: sudo is missing whatever this machine has installed.
    bindir = project.root / "bin"
    bindir.mkdir()
    bash = shutil.which("bash")
    assert bash is not None
    (bindir / "bash").symlink_to(bash)
    project.pfyfile(f"task t\n  env PATH={bindir}\n  shell echo as-me\nend\n")
    if os.geteuid() == 0:  # root needs no sudo to be root
        assert project.run("t", "sudo=true").stdout == "as-me\n"
    done = project.run("t", "sudo_user=nobody")
    assert done.returncode == 3
    assert "error: sudo: not found on PATH (needed for sudo=true)" in done.stderr
    assert "hint: install it with: apt-get install -y sudo" in done.stderr
