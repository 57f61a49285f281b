"""The task runner's command line: discovery, list, help, completion, dispatch, colour."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import PF, Project
from tests.tools import needs_tool

PFYFILE = """
env GREETING=hi
task build target="wasm" opt_level="2" [alias b]
  describe Build the thing
  example pf build target=llvm
  note a note
  needs prepare
  sources src/*.c
  shell echo "build $target $opt_level"
end
task prepare
  shell echo prepare
end
task deploy host
  describe Deploy it
  shell echo "deploy to ${host:-nowhere}"
end
"""
WEB = """
task build-rust opt="1"
  describe Build Rust for the web
  shell echo "web build-rust $opt"
end
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    root = tmp_path / "project"
    root.mkdir()
    return Project(root)


@pytest.fixture
def proj(project: Project) -> Project:
    project.pfyfile(PFYFILE)
    project.write("Pfyfile.web.pf", WEB)
    return project


def test_list_groups_tasks_by_file_and_group(proj: Project) -> None:
    done = proj.run("list")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "Pfyfile.pf\n"
        "  build target=wasm opt_level=2  Build the thing  [alias b]\n"
        "  prepare\n"
        "  deploy host                    Deploy it\n"
        "\n"
        "group web  (Pfyfile.web.pf)\n"
        "  build-rust opt=1               Build Rust for the web\n"
    )
    assert proj.run("list", "web").stdout.startswith("group web")
    names = proj.run("list", "--names").stdout.split()
    assert names == ["build", "prepare", "deploy", "b", "web", "web:build-rust"]
    done = proj.run("list", "wbe")
    assert done.returncode == 2 and "did you mean `web`?" in done.stderr


def test_help_task_and_task_help_show_one_task_in_full(proj: Project) -> None:
    done = proj.run("help", "build")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("build  (Pfyfile.pf:2)\n  Build the thing\n")
    assert "usage: pf build [target=wasm] [opt_level=2]" in text
    assert "aliases: b" in text and "needs: prepare" in text and "sources: src/*.c" in text
    assert "examples:\n  pf build target=llvm" in text and "notes:\n  a note" in text
    assert text.endswith(
        '\n  task build target="wasm" opt_level="2" [alias b]\n'
        "    describe Build the thing\n"
        "    example pf build target=llvm\n"
        "    note a note\n"
        "    needs prepare\n"
        "    sources src/*.c\n"
        '    shell echo "build $target $opt_level"\n'
        "  end\n"
    )
    assert proj.run("build", "--help").stdout == text
    assert proj.run("b", "-h").stdout == text
    assert "usage: pf web build-rust [opt=1]" in proj.run("help", "web", "build-rust").stdout
    done = proj.run("help", "biuld")
    assert done.returncode == 2 and "did you mean `build`?" in done.stderr


def test_usage_and_version(proj: Project) -> None:
    done = proj.run()
    assert done.returncode == 0 and "usage: pf [-f FILE]" in done.stdout
    assert "list [GROUP]" in done.stdout and "compile" in done.stdout
    assert proj.run("--help").stdout == done.stdout
    assert proj.run("help").stdout == done.stdout
    assert proj.run("--version").stdout.startswith("pf ")


def test_discovery_in_parents_file_flag_pfy_file_and_legacy_form(proj: Project) -> None:
    sub = proj.root / "deep" / "er"
    sub.mkdir(parents=True)
    done = proj.run("prepare", cwd=sub)
    assert done.returncode == 0 and done.stdout == "prepare\n"
    other = proj.write("elsewhere/other.pf", "task only\n  shell pwd\nend\n")
    assert proj.run("-f", str(other), "only").stdout.strip() == str(other.parent)
    assert proj.run("--file=elsewhere/other.pf", "only").returncode == 0
    done = proj.run("only", env={"PFY_FILE": str(other)})
    assert done.returncode == 0, done.stderr
    assert proj.run("elsewhere/other.pf", "only").stdout.strip() == str(other.parent)
    assert proj.run("elsewhere/other.pf").stdout.startswith("elsewhere/other.pf\n  only")
    empty = proj.root.parent / "empty"
    empty.mkdir()
    done = proj.run("list", cwd=empty)
    assert done.returncode == 2
    assert f"no Pfyfile.pf in {empty} or any parent directory" in done.stderr


def test_a_task_named_like_a_builtin_command_wins(project: Project) -> None:
    project.pfyfile(
        "task build\n  shell echo my-build\nend\ntask toolchains\n  shell echo mine\nend\n"
    )
    assert project.run("build").stdout == "my-build\n"
    assert project.run("toolchains").stdout == "mine\n"
    project.pfyfile("task other\n  shell echo x\nend\n")
    done = project.run("build", "--help")
    assert done.returncode == 0 and "usage: pf build" in done.stdout  # the built-in's argparse help
    # list/help/completion are always pf's
    project.pfyfile("task list\n  shell echo never\nend\n")
    assert project.run("list").stdout.startswith("Pfyfile.pf\n  list")


def test_unknown_name_without_a_pfyfile_is_an_unknown_command(tmp_path: Path) -> None:
    done = subprocess.run([PF, "lsit"], cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "unknown command 'lsit'" in done.stderr and "did you mean 'list'?" in done.stderr


def test_completion_scripts_and_the_complete_helper(proj: Project) -> None:
    def complete(line: str) -> list[str]:
        return proj.run("--complete", line).stdout.split()

    assert complete("pf ") == [
        "list",
        "help",
        "completion",
        "compile",
        "build",
        "toolchains",
        "serve",
        "token",
        "worker",
        "check",
        "config",
        "cache",
        "prepare",
        "deploy",
        "b",
        "web",
    ]
    assert complete("pf pr") == ["prepare"]
    assert complete("pf web ") == ["build-rust"]
    assert complete("pf build ") == [
        "target=",
        "opt_level=",
        "build",
        "prepare",
        "deploy",
        "b",
        "web",
    ]
    assert complete("pf build target=wasm o") == ["opt_level="]
    assert complete("pf build target=") == ["target=wasm"]
    assert complete("pf completion ") == ["bash", "zsh"]
    assert complete("pf --f") == ["--file", "--force", "--fail-fast"]
    assert complete("pf -f ") == []
    assert proj.run("completion", "bash").stdout.startswith("# bash completion for pf")
    assert proj.run("completion", "zsh").stdout.startswith("#compdef pf")
    done = proj.run("completion", "fish")
    assert done.returncode == 2 and "bash or zsh" in done.stderr


@needs_tool("bash")
def test_the_bash_script_completes_in_a_real_bash(proj: Project) -> None:
    script = proj.run("completion", "bash").stdout
    (proj.root / "pf.bash").write_text(script)
    probe = """
source ./pf.bash
try() {
  COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}
  read -ra COMP_WORDS <<< "$COMP_LINE"; COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
  [[ "$COMP_LINE" == *" " ]] && COMP_CWORD=${#COMP_WORDS[@]}
  _pf
  echo "$1 => ${COMPREPLY[*]}"
}
try "pf prep"
try "pf web b"
try "pf build opt"
try "pf build target=w"
complete -p pf
"""
    env = {**os.environ, "PATH": f"{Path(PF).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "--norc", "-c", probe], cwd=proj.root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "pf prep => prepare",
        "pf web b => build-rust",
        "pf build opt => opt_level=",
        "pf build target=w => wasm",  # bash replaces only what follows the `=`
        "complete -o default -F _pf pf",
    ]


@needs_tool("zsh")
def test_the_zsh_script_completes_in_a_real_zsh(proj: Project) -> None:
    (proj.root / "_pf").write_text(proj.run("completion", "zsh").stdout)
    # compadd/_files only exist inside a completion widget: stand-ins print their arguments.
    probe = """
source ./_pf
compadd() { print -r -- "compadd $*"; }
_files() { print -r -- "_files"; }
words=(pf web ""); CURRENT=3; _pf
words=(pf build ""); CURRENT=3; _pf
words=(pf -f ""); CURRENT=3; _pf
"""
    env = {**os.environ, "PATH": f"{Path(PF).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["zsh", "-f", "-c", probe], cwd=proj.root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "compadd -Q -- build-rust",
        "compadd -Q -- build prepare deploy b web",
        "compadd -Q -S  -- target= opt_level=",
        "_files",
    ]


def _on_a_terminal(project: Project, *args: str, no_color: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    if no_color:
        env["NO_COLOR"] = "1"
    main, secondary = pty.openpty()
    try:
        done = subprocess.run(
            [PF, *args], cwd=project.root, env=env, stdout=secondary, stderr=secondary, timeout=60
        )
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert done.returncode == 0
        return b"".join(chunks).decode()
    finally:
        os.close(main)
        if secondary != -1:
            os.close(secondary)


def test_colour_only_on_a_terminal_and_never_with_no_color(proj: Project) -> None:
    plain = proj.run("prepare")
    assert "\x1b[" not in plain.stdout + plain.stderr
    coloured = _on_a_terminal(proj, "prepare", no_color=False)
    assert "\x1b[36m$ echo prepare\x1b[0m" in coloured
    assert "\x1b[" not in _on_a_terminal(proj, "prepare", no_color=True)


def test_a_reader_that_went_away_ends_pf_quietly(proj: Project) -> None:
    # `pf list | head -1` once the reader has gone: no traceback, the SIGPIPE status.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [PF, "list"], cwd=proj.root, stdout=write_end, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141
    assert done.stderr == ""
