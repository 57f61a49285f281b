"""``shell`` and its languages: plain bash lines, ``[lang:X]`` one-liners, ``@file -- args``
and heredoc blocks, as plans. Imports ``pf.tasks.tools`` (and through it config), and the
language names from ``pf.dsl.verbs``, where the parser looks them up.

A plain ``shell`` line goes to ``bash -c`` unchanged (docs/pfyfile.md: pipes, ``&&`` and
``${x:-d}`` are bash's business). Polyglot code is written to a file in a scratch
directory the caller owns and handed to the interpreter as a script, so every language
sees its arguments the same way the original pf gave them: ``sys.argv[1:]``,
``process.argv.slice(2)``, ``@ARGV``, ``ARGV``, ``"$@"``. Compiled languages compile that
file in the scratch directory and run the binary only if compiling succeeded (the plan
stops at the first failing step); the LLVM languages print the IR instead. The table is
the original pf's forty languages; one whose tool is missing names its install command.
Parameters and task env reach every program as its environment: each command runs with
exactly ``Context.env``.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pf.dsl.verbs import LANGUAGES as NAMES
from pf.tasks.tools import (
    BadArgument,
    Context,
    Plan,
    Run,
    Step,
    Tool,
    UnknownLanguage,
    WriteFile,
    find_tool,
    suggest,
)

# compile(compiler, source, output) -> argv
CompileArgv = Callable[[str, str, str], tuple[str, ...]]
# (runner, output) -> argv that runs a compiled output with a tool of its own (java, llvm-dis)
RunArgv = Callable[[str, str], tuple[str, ...]]


@dataclass(frozen=True)
class Language:
    """One polyglot language: its tool, file suffix and, if compiled, how to compile and run.

    Its name and aliases are the DSL's (:data:`pf.dsl.verbs.LANGUAGES`). An interpreter
    gets ``flags``, the script and the arguments. A compiled language writes ``output``
    in scratch and runs it, or runs it with ``runner`` (``java``; clang reading back
    bitcode), or, when it ``emits``, prints what the compiler wrote to stdout and runs
    nothing (LLVM IR).
    """

    name: str
    aliases: tuple[str, ...]
    suffix: str
    tool: Tool
    compile: CompileArgv | None = None
    flags: tuple[str, ...] = ()
    stem: str = "main"
    output: str = "main"
    runner: tuple[Tool, RunArgv] | None = None
    emits: bool = False

    @property
    def compiled(self) -> bool:
        return self.compile is not None


def _cc(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "-O2", src, "-o", out, "-lm")


def _o2(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "-O2", src, "-o", out)


def _plain(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "-o", out, src)


def _rustc(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "--edition", "2021", "-O", src, "-o", out)


def _go(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "build", "-o", out, src)


def _asm(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "-x", "assembler", src, "-o", out)


def _zig(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "build-exe", "-O", "Debug", f"-femit-bin={out}", src)


def _nim(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "c", "--hints:off", f"-o:{out}", src)


def _crystal(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "build", "-o", out, src)


def _javac(compiler: str, src: str, out: str) -> tuple[str, ...]:
    return (compiler, "-d", out, src)


def _java(runner: str, classes: str) -> tuple[str, ...]:
    return (runner, "-cp", classes, "Main")


def _llvm_ir(c: bool) -> CompileArgv:
    language = ("-x", "c") if c else ()

    def argv(compiler: str, src: str, out: str) -> tuple[str, ...]:
        return (compiler, *language, "-O3", "-S", "-emit-llvm", src, "-o", "-")

    return argv


def _llvm_bc(c: bool) -> CompileArgv:
    language = ("-x", "c") if c else ()

    def argv(compiler: str, src: str, out: str) -> tuple[str, ...]:
        return (compiler, *language, "-O3", "-c", "-emit-llvm", src, "-o", out)

    return argv


def _disassemble(runner: str, bitcode: str) -> tuple[str, ...]:
    # The compiler that wrote the bitcode reads it back: llvm-dis of another LLVM
    # version may refuse it.
    return (runner, "-S", "-emit-llvm", bitcode, "-o", "-")


CLANG = Tool.apt("clang", None, "clang", "clang-19", "clang-14")
CLANGXX = Tool.apt("clang++", "clang", "clang++", "clang++-19", "clang++-14")
FLANG = Tool.apt("flang-new", "flang-new-19", "flang-new-19", "flang-new", "flang")
JAVAC = Tool.apt("javac", "default-jdk-headless")
JAVA = Tool.apt("java", "default-jre-headless")
GHC = Tool.apt("ghc")
OCAML = Tool.apt("ocaml", "ocaml-nox")


def _lang(
    name: str,
    suffix: str,
    tool: Tool,
    compile: CompileArgv | None = None,
    *,
    flags: tuple[str, ...] = (),
    stem: str = "main",
    output: str = "main",
    runner: tuple[Tool, RunArgv] | None = None,
    emits: bool = False,
) -> Language:
    """The language ``name`` with its aliases from the DSL's table."""
    return Language(name, NAMES[name], suffix, tool, compile, flags, stem, output, runner, emits)


LANGUAGES: tuple[Language, ...] = (
    _lang("bash", ".sh", Tool.apt("bash")),
    _lang("sh", ".sh", Tool.apt("sh", "dash")),
    _lang("dash", ".sh", Tool.apt("dash")),
    _lang("zsh", ".zsh", Tool.apt("zsh")),
    _lang("fish", ".fish", Tool.apt("fish")),
    _lang("ksh", ".ksh", Tool.apt("ksh")),
    _lang("tcsh", ".csh", Tool.apt("tcsh")),
    _lang(
        "pwsh",
        ".ps1",
        Tool(
            "pwsh",
            ("pwsh",),
            "apt-get install -y powershell (from Microsoft's Debian repository)",
        ),
        flags=("-NoLogo", "-NonInteractive", "-File"),
    ),
    _lang("python", ".py", Tool.apt("python3", None, "python3", "python")),
    _lang("node", ".js", Tool.apt("node", "nodejs", "node", "nodejs")),
    # Tasks are the user's own commands: Deno gets the environment and files like the others.
    _lang("deno", ".ts", Tool("deno", ("deno",), "npm install -g deno"), flags=("run", "-A")),
    _lang("ts-node", ".ts", Tool("ts-node", ("ts-node",), "npm install -g ts-node typescript")),
    _lang("perl", ".pl", Tool.apt("perl")),
    _lang("php", ".php", Tool.apt("php", "php-cli")),
    _lang("ruby", ".rb", Tool.apt("ruby")),
    _lang("r", ".R", Tool.apt("Rscript", "r-base-core")),
    _lang(
        "julia",
        ".jl",
        Tool("julia", ("julia",), "curl -fsSL https://install.julialang.org | sh"),
    ),
    _lang("haskell", ".hs", Tool.apt("runghc", "ghc")),
    _lang("ocaml", ".ml", OCAML),
    _lang("elixir", ".exs", Tool.apt("elixir")),
    _lang(
        "dart",
        ".dart",
        Tool("dart", ("dart",), "apt-get install -y dart (from Google's Dart repository)"),
        flags=("run",),
    ),
    _lang("lua", ".lua", Tool.apt("lua", "lua5.4", "lua", "lua5.4")),
    _lang("c", ".c", Tool.apt("gcc", None, "gcc", "cc", "clang"), compile=_cc),
    _lang("cpp", ".cpp", Tool.apt("g++", None, "g++", "c++", "clang++"), compile=_o2),
    # rustup's toolchain when PATH lacks it (host code may need a newer Rust than Debian's 1.63).
    _lang(
        "rust",
        ".rs",
        Tool("rustc", ("rustc", "$HOME/.cargo/bin/rustc"), "apt-get install -y rustc"),
        compile=_rustc,
    ),
    # flang-new-19 is pf's wasm Fortran compiler (scripts/setup.sh); it links host
    # executables too, so Fortran snippets run without gfortran.
    _lang(
        "fortran",
        ".f90",
        Tool.apt("gfortran", None, "gfortran", "flang-new-19", "flang-new", "flang"),
        compile=_o2,
    ),
    _lang("go", ".go", Tool.apt("go", "golang-go"), compile=_go),
    _lang(
        "asm", ".s", Tool.apt("clang", None, "clang", "clang-19", "clang-14", "gcc"), compile=_asm
    ),
    _lang(
        "zig",
        ".zig",
        Tool("zig", ("zig",), "download Zig from ziglang.org/download and put `zig` on PATH"),
        compile=_zig,
    ),
    _lang("nim", ".nim", Tool.apt("nim"), compile=_nim),
    _lang("crystal", ".cr", Tool.apt("crystal"), compile=_crystal),
    _lang("haskell-compile", ".hs", GHC, compile=_plain),
    _lang("ocamlc", ".ml", Tool.apt("ocamlc", "ocaml-nox"), compile=_plain),
    # Java's class is Main, so its file is Main.java; `output` is the classes folder.
    # Without an Android SDK the original ran Android Java on the JVM too; so does pf.
    *(
        _lang(
            name,
            ".java",
            JAVAC,
            compile=_javac,
            stem="Main",
            output="classes",
            runner=(JAVA, _java),
        )
        for name in ("java-openjdk", "java-android")
    ),
    _lang("c-llvm", ".c", CLANG, compile=_llvm_ir(True), emits=True),
    _lang("cpp-llvm", ".cpp", CLANGXX, compile=_llvm_ir(False), emits=True),
    _lang(
        "c-llvm-bc",
        ".c",
        CLANG,
        compile=_llvm_bc(True),
        output="main.bc",
        runner=(CLANG, _disassemble),
    ),
    _lang(
        "cpp-llvm-bc",
        ".cpp",
        CLANGXX,
        compile=_llvm_bc(False),
        output="main.bc",
        runner=(CLANGXX, _disassemble),
    ),
    _lang("fortran-llvm", ".f90", FLANG, compile=_llvm_ir(False), emits=True),
)

_BY_NAME: dict[str, Language] = {
    key: lang for lang in LANGUAGES for key in (lang.name, *lang.aliases)
}
# Names that mean "no polyglot, plain bash" for `shell_lang` (docs/pfyfile.md: `default`).
DEFAULT_NAMES = frozenset({"default", ""})


def language(name: str) -> Language:
    """The language ``name`` (or an alias) stands for; UnknownLanguage with did-you-mean."""
    found = _BY_NAME.get(name.strip().lower())
    if found is None:
        raise UnknownLanguage(name, [lang.name for lang in LANGUAGES], suggest(name, _BY_NAME))
    return found


def is_default(name: str | None) -> bool:
    """True when ``name`` selects plain bash ``shell`` lines (None, ``default``)."""
    return name is None or name.strip().lower() in DEFAULT_NAMES


# ------------------------------------------------------------------------- sources

_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _expand(word: str, ctx: Context) -> str:
    # `@file -- $x` args are not seen by bash, but a shell line's words would be
    # expanded by it, so expand $x, ${x} and ${x:-default} from the task env likewise.
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        found = ctx.env.get(name, "")
        default = match.group(2)
        return found if found or default is None else default

    return _VAR.sub(value, word)


_PATH_WORD = re.compile(r"[\w./~+-]+")


def split_file_ref(
    text: str, is_file: Callable[[str], bool] | None = None
) -> tuple[str, list[str]] | None:
    """``@path [--] args…`` → (path, args); None when ``text`` is code, not a file ref.

    Code may begin with ``@`` too (a Python decorator, a Perl array), so only one line
    whose first word looks like a path — it has a ``.`` or ``/`` (``@build.py``,
    ``@scripts/run``), or ``is_file`` says it names a file — is a file reference.
    """
    stripped = text.strip()
    if not stripped.startswith("@") or "\n" in stripped:
        return None
    head = stripped[1:].split(None, 1)
    if not head or stripped[1].isspace():
        raise BadArgument("shell: '@' must be followed by a file name, as in @script.py -- args")
    first = head[0]
    looks_like_path = _PATH_WORD.fullmatch(first) is not None and (
        "." in first or "/" in first or (is_file is not None and is_file(first))
    )
    if not looks_like_path:
        return None
    try:
        words = shlex.split(stripped[1:])
    except ValueError as exc:
        raise BadArgument(f"shell: cannot split the arguments of {stripped!r}: {exc}") from exc
    path, rest = words[0], words[1:]
    if rest and rest[0] == "--":
        rest = rest[1:]
    return path, rest


# --------------------------------------------------------------------------- plans


def bash_plan(command: str, ctx: Context) -> Plan:
    """A plain ``shell`` line: ``bash -c COMMAND``, unchanged."""
    bash = find_tool(_BY_NAME["bash"].tool, ctx, "shell")
    return Plan((ctx.command((bash, "-c", command)),))


def _ensure_newline(code: str) -> str:
    return code if code.endswith("\n") else code + "\n"


def _compile_env(lang: Language, ctx: Context, scratch: Path) -> dict[str, str]:
    # `go build` refuses to run without a build cache; give it one in scratch when the
    # task env offers neither GOCACHE nor a HOME/XDG_CACHE_HOME to derive it from.
    env = ctx.env
    if lang.name == "go" and not any(k in env for k in ("GOCACHE", "HOME", "XDG_CACHE_HOME")):
        return {"GOCACHE": str(scratch / "gocache")}
    return {}


def code_plan(
    lang: str,
    code: str,
    args: Sequence[str] = (),
    *,
    ctx: Context,
    scratch: Path,
) -> Plan:
    """Run ``code`` (a one-liner or a heredoc body) in ``lang`` with ``args`` as argv.

    ``scratch`` is a directory the caller creates and removes afterwards (sequential
    calls may share one; concurrent ones need their own): the snippet, and for compiled
    languages the binary, live there, so nothing is left in the task's tree.
    """
    spec = language(lang)
    source = scratch / f"{spec.stem}{spec.suffix}"
    write = WriteFile(source, _ensure_newline(code))
    return Plan((write, *_run_steps(spec, source, args, ctx, scratch, compile_cwd=scratch)))


def file_plan(
    lang: str,
    path: str | Path,
    args: Sequence[str] = (),
    *,
    ctx: Context,
    scratch: Path,
) -> Plan:
    """Run the source file ``path`` (relative to ``ctx.cwd``) in ``lang`` with ``args``."""
    spec = language(lang)
    source = ctx.resolve(path)
    if not source.is_file():
        raise BadArgument(f"shell [lang:{spec.name}]: source file not found: {source}")
    # Go resolves imports from the file's own module, so it compiles where the file is;
    # the others compile in scratch so objects and .mod files stay out of the tree.
    compile_cwd = source.parent if spec.name == "go" else scratch
    return Plan(_run_steps(spec, source, args, ctx, scratch, compile_cwd=compile_cwd))


def _run_steps(
    spec: Language,
    source: Path,
    args: Sequence[str],
    ctx: Context,
    scratch: Path,
    *,
    compile_cwd: Path,
) -> tuple[Step, ...]:
    why = f"shell [lang:{spec.name}]"
    tool = find_tool(spec.tool, ctx, why)
    if spec.compile is None:
        return (ctx.command((tool, *spec.flags, str(source), *args)),)
    output = scratch / spec.output
    build = spec.compile(tool, str(source), str(output))
    compile_step: Run = ctx.command(build, cwd=compile_cwd, **_compile_env(spec, ctx, scratch))
    if spec.emits:  # the compiler printed the result; there is nothing to run
        return (compile_step,)
    if spec.runner is None:
        return (compile_step, ctx.command((str(output), *args)))
    runner, argv = spec.runner
    return (compile_step, ctx.command((*argv(find_tool(runner, ctx, why), str(output)), *args)))


def shell_plan(
    command: str,
    *,
    lang: str | None = None,
    ctx: Context,
    scratch: Path,
) -> Plan:
    """Any ``shell`` line: plain bash when ``lang`` is None/``default``, else polyglot.

    With a language, ``@file [--] args`` runs a file (its args split like a shell
    would, ``$x`` expanded from the task env); anything else is code, e.g. a heredoc body.
    """
    if is_default(lang):
        return bash_plan(command, ctx)
    assert lang is not None
    ref = split_file_ref(command, lambda name: ctx.resolve(_expand(name, ctx)).is_file())
    if ref is None:
        return code_plan(lang, command, ctx=ctx, scratch=scratch)
    path, args = ref
    return file_plan(
        lang, _expand(path, ctx), [_expand(a, ctx) for a in args], ctx=ctx, scratch=scratch
    )
