"""The Pfyfile vocabulary: which words start which lines; shared by the parser and the CLI.

Imports nothing. Build helpers and system verbs are parsed into the generic
:class:`pf.dsl.ast.Verb`; what they *do* is the executor's business.
"""

from __future__ import annotations

TOP_LEVEL = ("env", "hosts", "include", "task")
METADATA = ("describe", "example", "note", "synopsis", "tag")
DECLARATIONS = (*METADATA, "generates", "needs", "sources")
#: Build helpers, with the original's other spellings (`justfile` is `just`).
BUILD_HELPERS = (
    "auto_build",
    "autobuild",
    "build_detect",
    "cargo",
    "cmake",
    "configure",
    "detect_build",
    "go_build",
    "gobuild",
    "just",
    "justfile",
    "make",
    "makefile",
    "meson",
    "ninja",
)
#: Helpers of the original pf that pf loads (with a warning) but does not run.
UNSUPPORTED_HELPERS = frozenset(("auto_container", "autobuild_retry", "containerize"))
SYSTEM_VERBS = ("copy", "directory", "packages", "service", "sync")
#: Verbs parsed into the generic :class:`Verb` node.
GENERIC_VERBS = frozenset((*BUILD_HELPERS, *SYSTEM_VERBS, "compile"))
#: Every word that may start a line inside a task.
TASK_VERBS = tuple(
    sorted(
        {*GENERIC_VERBS, *DECLARATIONS, "else", "end", "env", "for", "if", "shell", "shell_lang"}
    )
)

#: verb -> (positional words needed, what they are, usage hint), checked at parse time
ARITY: dict[str, tuple[int, str, str]] = {
    "cargo": (1, "a subcommand", "write `cargo build [release=true] [features=] [target=]`"),
    "compile": (1, "source paths", "write `compile src/*.c target=wasm out=web/wasm/c`"),
    "copy": (2, "a source and a destination", "write `copy SRC DST [mode= user= group=]`"),
    "directory": (1, "a path", "write `directory PATH [mode=755]`"),
    "packages": (1, "package names", "write `packages install|remove NAME...`"),
    "service": (2, "an action and a service name", "write `service ACTION NAME`"),
}
SYNC_USAGE = "write `sync src=PATH dest=PATH [host= user= port=] [excludes=[..]] [delete] [dry]`"

#: The languages of `shell_lang NAME` and `shell [lang:NAME]`: the original pf's table
#: (docs/pfyfile.md), name -> aliases, all lower case. pf.tasks.polyglot runs them and takes
#: its names from here.
LANGUAGES: dict[str, tuple[str, ...]] = {
    # shells
    "bash": ("shell", "bash5", "shellscript"),
    "sh": ("posix",),
    "dash": ("dashshell",),
    "zsh": ("zshell",),
    "fish": ("fishshell",),
    "ksh": (),
    "tcsh": ("csh",),
    "pwsh": ("powershell", "ps1"),
    # interpreted
    "python": ("py", "python3", "ipython"),
    "node": ("js", "javascript", "nodejs"),
    "deno": ("ts", "typescript"),
    "ts-node": ("tsnode",),
    "perl": ("pl",),
    "php": (),
    "ruby": ("rb",),
    "r": ("rscript",),
    "julia": ("jl",),
    "haskell": ("hs", "runghc"),
    "ocaml": ("ml",),
    "elixir": ("exs",),
    "dart": (),
    "lua": (),
    # compiled, then run
    "c": ("gcc", "clang", "c99", "c11"),
    "cpp": ("c++", "cxx", "cc", "g++", "clang++"),
    "rust": ("rs", "rustc"),
    "fortran": ("f90", "f95", "gfortran", "fortran90", "flang"),
    "go": ("golang",),
    "asm": ("asm86", "assembly"),
    "zig": (),
    "nim": (),
    "crystal": ("cr",),
    "haskell-compile": ("ghc",),
    "ocamlc": (),
    "java-openjdk": ("java", "javac"),
    "java-android": ("java-android-google", "android-java"),
    # compiled to LLVM IR, which is printed instead of run
    "c-llvm": ("c-ir", "c-ll"),
    "cpp-llvm": ("cpp-ir", "cpp-ll"),
    "c-llvm-bc": ("c-bc",),
    "cpp-llvm-bc": ("cpp-bc",),
    "fortran-llvm": ("fortran-ir", "fortran-ll"),
}
#: Every word a language may be written as; `default` selects plain bash lines again.
LANGUAGE_NAMES = frozenset(
    ("default", *LANGUAGES, *(alias for aliases in LANGUAGES.values() for alias in aliases))
)


def language_facts(name: str) -> dict[str, str]:
    """The facts of an ``unknown-language`` message for ``name``: the known names, a guess."""
    from pf.dsl.suggest import suggest  # verbs imports nothing at load

    facts = {"name": name, "known": ", ".join(LANGUAGES)}
    guess = suggest(name.lower(), LANGUAGE_NAMES)
    if guess:
        facts["suggestion"] = guess
    return facts
