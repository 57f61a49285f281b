"""Polyglot ``shell``: every language whose tool is installed, one-liners, sticky ``shell_lang``,
heredocs and ``@file -- args``, with parameters reaching each program as its environment."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Project
from tests.tools import needs_tool

# language -> (tool, heredoc body printing "<lang> $who" from the environment)
PROGRAMS = {
    "python": ("python3", 'import os\nprint("python", os.environ["who"])'),
    "node": ("node", 'console.log("node", process.env.who);'),
    "perl": ("perl", 'print "perl $ENV{who}\\n";'),
    "bash": ("bash", 'echo "bash $who"'),
    "sh": ("sh", 'echo "sh $who"'),
    "c": (
        "cc",
        "#include <stdio.h>\n#include <stdlib.h>\n"
        'int main(void) { printf("c %s\\n", getenv("who")); return 0; }',
    ),
    "cpp": (
        "g++",
        "#include <cstdlib>\n#include <iostream>\n"
        'int main() { std::cout << "cpp " << std::getenv("who") << "\\n"; }',
    ),
    "rust": ("rustc", 'fn main() { println!("rust {}", std::env::var("who").unwrap()); }'),
    "fortran": (
        "flang-new-19",
        "program p\n  character(len=16) :: w\n  call get_environment_variable('who', w)\n"
        "  print '(a,a)', 'fortran ', trim(w)\nend program p",
    ),
}


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


@pytest.mark.parametrize(
    "lang",
    [pytest.param(lang, marks=needs_tool(tool)) for lang, (tool, _) in PROGRAMS.items()],
)
def test_heredoc_in_each_language_sees_the_parameters(project: Project, lang: str) -> None:
    _, body = PROGRAMS[lang]
    project.write(
        "Pfyfile.pf",
        f'task run who="nobody"\n  shell [lang:{lang}] << EOF\n{_indent(body)}\n  EOF\nend\n',
    )
    done = project.run("run", "who=pf", timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{lang} pf\n"


@needs_tool("python3", "node", "perl")
def test_one_liners_sticky_shell_lang_and_default(project: Project) -> None:
    project.pfyfile(
        """
        task mix n="3"
          shell [lang:py] print(int("$n") if False else 6 * 7)
          shell_lang js
          shell console.log([1, 2, 3].map((x) => x * Number(process.env.n)).join(","))
          shell_lang perl
          shell print join("-", (1..$ENV{n})), "\\n";
          shell_lang default
          shell echo "back to bash $n"
        end
        """
    )
    done = project.run("mix")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\n3,6,9\n1-2-3\nback to bash 3\n"


@needs_tool("python3", "cc")
def test_file_forms_pass_arguments(project: Project) -> None:
    project.write("tools/show.py", "import sys\nprint('args', sys.argv[1:])\n")
    project.write(
        "tools/hello.c",
        '#include <stdio.h>\nint main(int c, char **v) { printf("c %s\\n", v[1]); }\n',
    )
    project.write("tools/plain.sh", 'echo "sh $1 $2"\n')
    project.pfyfile(
        """
        task files who="you"
          shell [lang:python] @tools/show.py -- a "b c" $who
          shell [lang:c] @tools/hello.c -- $who
          shell @tools/plain.sh -- x $who
        end
        """
    )
    done = project.run("files", "who=me")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "args ['a', 'b c', 'me']\nc me\nsh x me\n"


@needs_tool("cc")
def test_a_compile_error_stops_before_running(project: Project) -> None:
    project.pfyfile(
        """
        task broken
          shell [lang:c] int main(void) { return undefined_thing; }
          shell echo never
        end
        """
    )
    done = project.run("broken")
    assert done.returncode != 0
    assert "undefined_thing" in done.stderr
    assert done.stdout == ""


def test_unknown_language_is_a_usage_error_with_a_suggestion(project: Project) -> None:
    project.pfyfile("task t\n  shell [lang:pyhton] print(1)\nend\n")
    done = project.run("t")
    assert done.returncode == 2
    assert "unknown language `pyhton`" in done.stderr and "did you mean `python`?" in done.stderr


@needs_tool("python3")
def test_a_variable_language_is_resolved_when_the_line_runs(project: Project) -> None:
    project.pfyfile(
        """
        task poly lang="python"
          shell [lang:$lang] << EOF
            print("hello")
          EOF
        end
        """
    )
    assert project.run("poly").stdout == "hello\n"
    assert project.run("poly", "lang=PY").stdout == "hello\n"  # an alias, in any case
    wrong = project.run("poly", "lang=cobol")
    assert wrong.returncode == 2
    assert wrong.stderr.splitlines()[:2] == [
        "error: unknown language `cobol`",
        " --> Pfyfile.pf:2:3",
    ]
    assert project.run("check").returncode == 0  # nothing to warn of before it runs


def test_the_original_languages_are_known_and_a_missing_one_says_how_to_install(
    project: Project,
) -> None:
    project.pfyfile("task t\n  shell [lang:lua] print(1)\nend\n")
    done = project.run("t", env={"PATH": "/usr/bin:/bin"})
    if done.returncode == 0:
        pytest.skip("lua is installed here")
    assert "lua: not found on PATH (needed for shell [lang:lua])" in done.stderr
    assert "install it with: apt-get install -y lua5.4" in done.stderr
