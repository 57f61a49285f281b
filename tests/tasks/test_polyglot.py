"""Polyglot ``shell``: every language really runs code with args and env."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pf.tasks import (
    LANGUAGES,
    BadArgument,
    Context,
    Plan,
    ToolMissing,
    UnknownLanguage,
    bash_plan,
    code_plan,
    file_plan,
    find_tool,
    language,
    shell_plan,
    split_file_ref,
)
from tests.tools import PREFIX

from .conftest import Ran

Runner = Callable[[Plan], Ran]

# Each snippet prints "<lang> <args joined by ,> <$GREETING>".
SNIPPETS: dict[str, str] = {
    "bash": 'echo "bash $(IFS=,; echo "$*") $GREETING"',
    "sh": 'printf "sh %s %s\\n" "$1,$2" "$GREETING"',
    "dash": 'printf "dash %s %s\\n" "$1,$2" "$GREETING"',
    "zsh": 'echo "zsh ${(j:,:)@} $GREETING"',
    "python": "import os, sys\nprint('python', ','.join(sys.argv[1:]), os.environ['GREETING'])",
    "node": "console.log('node', process.argv.slice(2).join(','), process.env.GREETING)",
    "perl": 'print "perl ", join(",", @ARGV), " $ENV{GREETING}\\n";',
    "ruby": 'puts "ruby #{ARGV.join(",")} #{ENV["GREETING"]}"',
    "c": """
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    printf("c %s,%s %s\\n", argv[1], argv[2], getenv("GREETING"));
    return 0;
}
""",
    "cpp": """
#include <cstdlib>
#include <iostream>
int main(int argc, char **argv) {
    std::cout << "cpp " << argv[1] << "," << argv[2] << " " << std::getenv("GREETING") << "\\n";
}
""",
    "rust": """
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    println!("rust {} {}", args.join(","), std::env::var("GREETING").unwrap());
}
""",
    "fortran": """
program hello
  character(len=32) :: a, b, g
  call get_command_argument(1, a)
  call get_command_argument(2, b)
  call get_environment_variable("GREETING", g)
  print '(A)', 'fortran ' // trim(a) // ',' // trim(b) // ' ' // trim(g)
end program hello
""",
    "go": """
package main

import (
\t"fmt"
\t"os"
\t"strings"
)

func main() {
\tfmt.Println("go", strings.Join(os.Args[1:], ","), os.Getenv("GREETING"))
}
""",
    "java-openjdk": """
public class Main {
    public static void main(String[] args) {
        String greeting = System.getenv("GREETING");
        System.out.println("java-openjdk " + String.join(",", args) + " " + greeting);
    }
}
""",
    "java-android": """
public class Main {
    public static void main(String[] args) {
        String greeting = System.getenv("GREETING");
        System.out.println("java-android " + String.join(",", args) + " " + greeting);
    }
}
""",
}

# Languages that print the LLVM IR of the code instead of running it.
EMITTERS: dict[str, str] = {
    "c-llvm": "int twice(int x) { return 2 * x; }",
    "cpp-llvm": "int twice(int x) { return 2 * x; }",
    "c-llvm-bc": "int twice(int x) { return 2 * x; }",
    "cpp-llvm-bc": "int twice(int x) { return 2 * x; }",
    "fortran-llvm": "integer function twice(x)\n  integer :: x\n  twice = 2 * x\nend function",
}

# The original's other languages, not on pf machines: the error says how to install each.
ELSEWHERE: dict[str, str] = {
    "fish": "apt-get install -y fish",
    "ksh": "apt-get install -y ksh",
    "tcsh": "apt-get install -y tcsh",
    "pwsh": "apt-get install -y powershell (from Microsoft's Debian repository)",
    "deno": "npm install -g deno",
    "ts-node": "npm install -g ts-node typescript",
    "php": "apt-get install -y php-cli",
    "r": "apt-get install -y r-base-core",
    "julia": "curl -fsSL https://install.julialang.org | sh",
    "haskell": "apt-get install -y ghc",
    "ocaml": "apt-get install -y ocaml-nox",
    "elixir": "apt-get install -y elixir",
    "dart": "apt-get install -y dart (from Google's Dart repository)",
    "lua": "apt-get install -y lua5.4",
    "zig": "download Zig from ziglang.org/download and put `zig` on PATH",
    "nim": "apt-get install -y nim",
    "crystal": "apt-get install -y crystal",
    "haskell-compile": "apt-get install -y ghc",
    "ocamlc": "apt-get install -y ocaml-nox",
    "asm": "apt-get install -y clang",
}

# These must run on every pf machine (set-up installs them); the rest may be missing, and then the
# error must say exactly how to install them.
REQUIRED = {"python", "node", "perl", "bash", "sh", "c", "cpp", "rust", "fortran", "dash"}
INSTALL = {
    "ruby": "apt-get install -y ruby",
    "go": "apt-get install -y golang-go",
    "zsh": "apt-get install -y zsh",
    "java-openjdk": "apt-get install -y default-jdk-headless",
    "java-android": "apt-get install -y default-jdk-headless",
}


def test_every_language_is_tested() -> None:
    tested = [*SNIPPETS, *EMITTERS, *ELSEWHERE]
    assert sorted(tested) == sorted(lang.name for lang in LANGUAGES)


@pytest.mark.parametrize("lang", sorted(EMITTERS))
def test_llvm_languages_print_the_ir(lang: str, ctx: Context, scratch: Path, run: Runner) -> None:
    plan = code_plan(lang, EMITTERS[lang], ctx=ctx, scratch=scratch)
    ran = run(plan)
    assert ran.result.code == 0, ran.err
    assert any(line.startswith("define") and "twice" in line for line in ran.out), ran.out


@pytest.mark.parametrize("lang", sorted(ELSEWHERE))
def test_a_language_not_installed_names_its_install_command(
    lang: str, ctx: Context, scratch: Path
) -> None:
    empty = Context(ctx.cwd, {**ctx.env, "PATH": str(scratch)}, ctx.settings)
    with pytest.raises(ToolMissing) as info:
        code_plan(lang, "x", ctx=empty, scratch=scratch)
    assert info.value.install == ELSEWHERE[lang]
    assert info.value.hint == f"install it with: {ELSEWHERE[lang]}"


def test_assembly_is_assembled_linked_and_run(ctx: Context, scratch: Path, run: Runner) -> None:
    try:
        plan = code_plan(
            "asm", ".globl main\nmain:\n  mov $7, %eax\n  ret", ctx=ctx, scratch=scratch
        )
    except ToolMissing:
        pytest.skip(f"{PREFIX}clang or gcc")
    assert run(plan).result.code == 7


@pytest.mark.parametrize("lang", sorted(SNIPPETS))
def test_language_runs_code_with_args_and_env(
    lang: str, ctx: Context, scratch: Path, run: Runner
) -> None:
    ctx = Context(ctx.cwd, {**ctx.env, "GREETING": "hi"}, ctx.settings)
    try:
        plan = code_plan(lang, SNIPPETS[lang], ["one", "two"], ctx=ctx, scratch=scratch)
    except ToolMissing as missing:
        assert lang not in REQUIRED, f"{lang} must be installed on pf machines: {missing}"
        assert missing.install == INSTALL[lang]
        assert f"install it with: {INSTALL[lang]}" == missing.hint
        return
    ran = run(plan)
    assert ran.result.code == 0, ran.err
    assert ran.out == [f"{lang} one,two hi"]


def test_compiled_language_compiles_in_scratch_then_runs_in_cwd(
    ctx: Context, scratch: Path, run: Runner
) -> None:
    plan = code_plan(
        "c",
        '#include <unistd.h>\nint main(void){return access("here", 0);}',
        ctx=ctx,
        scratch=scratch,
    )
    compile_step, binary = plan.runs
    assert compile_step.cwd == scratch
    assert binary.argv == (str(scratch / "main"),)
    assert binary.cwd == ctx.cwd
    (ctx.cwd / "here").write_text("")
    assert run(plan).result.code == 0


def test_compile_error_stops_before_running(ctx: Context, scratch: Path, run: Runner) -> None:
    ran = run(code_plan("c", "int main(void) { return nope; }", ctx=ctx, scratch=scratch))
    assert ran.result.code != 0
    assert ran.result.failed is not None and "gcc" in ran.result.failed.describe()
    assert len(ran.result.completed) == 1  # the binary never ran
    assert any("nope" in line for line in ran.err)


def test_program_exit_code_is_the_plans(ctx: Context, scratch: Path, run: Runner) -> None:
    ran = run(code_plan("python", "import sys; sys.exit(7)", ctx=ctx, scratch=scratch))
    assert ran.result.code == 7


def test_heredoc_block_keeps_indentation(ctx: Context, scratch: Path, run: Runner) -> None:
    body = "for i in range(2):\n    if i:\n        print('block', i)\n"
    ran = run(shell_plan(body, lang="py", ctx=ctx, scratch=scratch))
    assert ran.out == ["block 1"]


def test_file_ref_runs_file_with_args_expanded(
    ctx: Context, scratch: Path, run: Runner, work: Path
) -> None:
    (work / "tools").mkdir()
    (work / "tools" / "greet.py").write_text("import sys\nprint('file', *sys.argv[1:])\n")
    ctx = Context(ctx.cwd, {**ctx.env, "who": "world"}, ctx.settings)
    plan = shell_plan(
        "@tools/greet.py -- 'a b' $who ${missing:-dflt}", lang="python", ctx=ctx, scratch=scratch
    )
    assert plan.argvs[-1][-3:] == ["a b", "world", "dflt"]
    assert run(plan).out == ["file a b world dflt"]


def test_file_ref_compiled(ctx: Context, scratch: Path, run: Runner, work: Path) -> None:
    (work / "hello.rs").write_text(
        'fn main() { println!("{}", std::env::args().nth(1).unwrap()); }'
    )
    ran = run(shell_plan("@hello.rs -- from-file", lang="rs", ctx=ctx, scratch=scratch))
    assert ran.out == ["from-file"]
    assert not (work / "main").exists()  # the binary stays in scratch


def test_file_ref_missing_file(ctx: Context, scratch: Path) -> None:
    with pytest.raises(BadArgument, match="source file not found"):
        file_plan("python", "nope.py", ctx=ctx, scratch=scratch)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("print(1)", None),
        ("@x.py", ("x.py", [])),
        ("@x.py -- a 'b c'", ("x.py", ["a", "b c"])),
        ("@x.py a -- b", ("x.py", ["a", "--", "b"])),
        ("  @dir/x.rs --  ", ("dir/x.rs", [])),
        # Code that starts with @ stays code.
        ("@dataclass\nclass A:\n    x: int", None),
        ("@functools.cache\ndef f(): pass", None),
        ("@list = (1, 2); print @list", None),
        ("@{[ 1 ]}", None),
        ("@run -- a", None),
    ],
)
def test_split_file_ref(text: str, expected: tuple[str, list[str]] | None) -> None:
    assert split_file_ref(text) == expected


def test_split_file_ref_bare_name_that_is_a_file() -> None:
    assert split_file_ref("@run -- a", lambda name: name == "run") == ("run", ["a"])
    assert split_file_ref("@list = (1)", lambda name: name == "run") is None


def test_perl_code_starting_with_at(ctx: Context, scratch: Path, run: Runner) -> None:
    ran = run(shell_plan('@l = (1, 2); print "@l\\n";', lang="perl", ctx=ctx, scratch=scratch))
    assert ran.out == ["1 2"]


@pytest.mark.parametrize("text", ["@", "@ -- a", "@x.py -- 'open"])
def test_split_file_ref_errors(text: str) -> None:
    with pytest.raises(BadArgument):
        split_file_ref(text)


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("py", "python"),
        ("python3", "python"),
        ("js", "node"),
        ("javascript", "node"),
        ("nodejs", "node"),
        ("c++", "cpp"),
        ("cxx", "cpp"),
        ("rs", "rust"),
        ("golang", "go"),
        ("f90", "fortran"),
        ("gfortran", "fortran"),
        ("shell", "bash"),
        ("rb", "ruby"),
        ("pl", "perl"),
        ("PYTHON", "python"),
    ],
)
def test_aliases(alias: str, name: str) -> None:
    assert language(alias).name == name


@pytest.mark.parametrize(("typo", "suggestion"), [("pyhton", "'python'"), ("rusty", "'rust'")])
def test_unknown_language_suggests(typo: str, suggestion: str) -> None:
    with pytest.raises(UnknownLanguage) as info:
        language(typo)
    assert info.value.message == f"unknown language {typo!r}"
    assert info.value.hint is not None and suggestion in info.value.hint
    assert info.value.exit_code == 2


def test_unknown_language_far_from_all_lists_known() -> None:
    with pytest.raises(UnknownLanguage) as info:
        language("cobol-2000")
    assert info.value.hint is not None and info.value.hint.startswith("known: bash, sh, dash, zsh")


def test_missing_interpreter_names_install_command(ctx: Context, scratch: Path) -> None:
    empty = Context(ctx.cwd, {**ctx.env, "PATH": str(scratch)}, ctx.settings)
    with pytest.raises(ToolMissing) as info:
        code_plan("perl", "print 1", ctx=empty, scratch=scratch)
    assert info.value.tool == "perl"
    assert info.value.install == "apt-get install -y perl"
    assert "perl: not found on PATH (needed for shell [lang:perl])" == info.value.message


def test_rust_falls_back_to_rustup_when_path_lacks_rustc(ctx: Context, scratch: Path) -> None:
    rustup_rustc = Path(ctx.env.get("HOME", "/root")) / ".cargo" / "bin" / "rustc"
    if not os.access(rustup_rustc, os.X_OK):
        pytest.skip(f"no rustup toolchain at {rustup_rustc}")
    bare = Context(ctx.cwd, {**ctx.env, "PATH": str(scratch)}, ctx.settings)
    spec = language("rust").tool
    assert find_tool(spec, bare) == str(rustup_rustc)


def test_plain_shell_goes_to_bash_unchanged(ctx: Context, scratch: Path, run: Runner) -> None:
    command = 'echo a-b | tr - + && echo "${UNSET_PF_VAR:-dflt}" ${x:+alt} $(echo sub)'
    ctx = Context(ctx.cwd, {**ctx.env, "x": "1"}, ctx.settings)
    plan = shell_plan(command, ctx=ctx, scratch=scratch)
    assert plan.argvs == [["bash", "-c", command]]
    assert run(plan).out == ["a+b", "dflt alt sub"]
    assert shell_plan(command, lang="default", ctx=ctx, scratch=scratch) == bash_plan(command, ctx)
