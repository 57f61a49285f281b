"""The driver contract: requests, options, tools, plans; what every toolchain driver returns.

A driver is data plus small pure functions. ``plan(request)`` returns the steps that turn
the request's sources into outputs, as argv lists whose first item is a *tool name*
(resolved to a binary by the engine) and whose paths are relative to a scratch
directory the engine lays out: sources under their own names, intermediates under
``obj/``, results under ``out/``. Because argv never contains a temporary path, it is
stable, and the engine digests it into the cache key as it is.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, Protocol

from pf.errors import Diagnostic, InvalidOption
from pf.toolchains.names import OBJ_DIR as OBJ_DIR
from pf.toolchains.names import OUT_DIR as OUT_DIR
from pf.toolchains.names import bounded, check_source_name, is_symbol, shown

LANGUAGES: tuple[str, ...] = ("rust", "c", "fortran", "wat")
TARGETS: tuple[str, ...] = ("wasm", "llvm", "asm")
OPT_LEVELS: tuple[str, ...] = ("0", "1", "2", "3", "s", "z")

EXTENSIONS: Mapping[str, str] = {
    ".rs": "rust",
    ".c": "c",
    ".h": "c",
    ".f": "fortran",
    ".for": "fortran",
    ".f77": "fortran",
    ".f90": "fortran",
    ".f95": "fortran",
    ".f03": "fortran",
    ".f08": "fortran",
    ".wat": "wat",
    ".wast": "wat",
}


# Ends the options of every tool that takes it. Response files are still expanded after
# it, so a source name is also passed through ``operand``.
END_OF_OPTIONS = "--"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def language_of(path: str) -> str | None:
    """The language a file name implies, or None."""
    suffix = PurePosixPath(path).suffix
    return EXTENSIONS.get(suffix) or EXTENSIONS.get(suffix.lower())


def operand(name: str) -> str:
    """A source name as a tool operand that no tool can read as an option or a response file.

    ``SourceFile`` already refuses names starting with ``-`` or ``@``; this keeps argv safe
    on its own. ``--`` is not enough for either: clang, rustc and the LLVM tools expand
    ``@file`` after it too, and clang's driver passes ``-name`` on to cc1, which reads it
    as an option. ``./name`` is the same file and neither. Other names are kept as they
    are, so diagnostics, ``__FILE__`` and debug info show the user's name.
    """
    return f"./{name}" if name.startswith(("-", "@")) else name


def stem_of(name: str) -> str:
    """The base name of files derived from ``name``, bounded so that they fit a file name."""
    return bounded(PurePosixPath(name).stem)


@dataclass(frozen=True)
class SourceFile:
    """One input file: its name as the user knows it (relative, POSIX) and its bytes.

    The name is checked by ``names.check_source_name`` (RequestError naming the rule).
    """

    name: str
    content: bytes

    def __post_init__(self) -> None:
        check_source_name(self.name)

    @property
    def stem(self) -> str:
        return stem_of(self.name)


def _parse_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidOption(name, f"{value!r} is not a boolean", ["true", "false"])


# Pipeline text only: no '/', so nothing in it can name a path, and no spaces. It
# reaches opt as the one argv word ``-passes=<text>``.
_PIPELINE = re.compile(r"[A-Za-z0-9_<>(),.=;\-]+")
# A pipeline is pass names, each with an optional <parameters> group, nested by the pass
# managers' adaptors: function(...), loop(...) and so on.
_PIPELINE_TOKEN = re.compile(r"([A-Za-z0-9][A-Za-z0-9.\-]*)(?:<([A-Za-z0-9=;\-]*)>)?|[(),]")
# The passes a request may name: LLVM 14's transformations of the IR, which read nothing
# and write nothing but the module they are given. Not there: printers and verifiers,
# graph writers (dot-*) and viewers (view-*, which start a program), profile readers and
# writers, instrumentation, and whatever opt may gain later.
PASSES = frozenset(
    {
        # pipelines and the adaptors that nest passes
        *("default", "thinlto-pre-link", "thinlto", "lto-pre-link", "lto"),
        *("module", "cgscc", "function", "loop", "loop-mssa"),
        # module passes
        *("always-inline", "called-value-propagation", "canonicalize-aliases", "constmerge"),
        *("deadargelim", "elim-avail-extern", "forceattrs", "function-specialization"),
        *("globaldce", "globalopt", "globalsplit", "hotcoldsplit", "inferattrs"),
        *("internalize", "ipsccp", "mergefunc", "partial-inliner", "rpo-function-attrs"),
        *("strip", "strip-dead-debug-info", "strip-dead-prototypes", "strip-debug-declare"),
        *("strip-nondebug", "strip-nonlinetable-debuginfo", "module-inline"),
        # call-graph passes
        *("argpromotion", "function-attrs", "inline"),
        # function passes
        *("adce", "aggressive-instcombine", "alignment-from-assumptions", "bdce"),
        *("break-crit-edges", "callsite-splitting", "consthoist", "constraint-elimination"),
        *("correlated-propagation", "dce", "dfa-jump-threading", "div-rem-pairs", "dse"),
        *("early-cse", "fix-irreducible", "flattencfg", "float2int", "gvn", "gvn-hoist"),
        *("gvn-sink", "infer-address-spaces", "instcombine", "instsimplify", "irce"),
        *("jump-threading", "lcssa", "libcalls-shrinkwrap", "load-store-vectorizer"),
        *("loop-data-prefetch", "loop-distribute", "loop-fusion", "loop-load-elim"),
        *("loop-simplify", "loop-sink", "loop-unroll", "loop-vectorize"),
        *("lower-constant-intrinsics", "lower-expect", "loweratomic", "lowerinvoke"),
        *("lowerswitch", "mem2reg", "memcpyopt", "mergeicmps", "mergereturn"),
        *("mldst-motion", "nary-reassociate", "newgvn", "partially-inline-libcalls"),
        *("reassociate", "reg2mem", "scalarizer", "separate-const-offset-from-gep"),
        *("sccp", "simplifycfg", "sink", "slp-vectorizer", "slsr", "speculative-execution"),
        *("sroa", "tailcallelim", "unify-loop-exits", "vector-combine"),
        # loop and loop-nest passes
        *("canon-freeze", "indvars", "licm", "lnicm", "loop-bound-split", "loop-deletion"),
        *("loop-flatten", "loop-idiom", "loop-instsimplify", "loop-interchange"),
        *("loop-predication", "loop-reduce", "loop-reroll", "loop-rotate"),
        *("loop-simplifycfg", "loop-unroll-and-jam", "loop-unroll-full"),
        "simple-loop-unswitch",
    }
)


def _parse_passes(name: str, value: object) -> str:
    text = str(value).strip()
    wrong = InvalidOption(
        name,
        f"{shown(str(value))} is not an LLVM pass pipeline "
        "(e.g. 'default<O2>' or 'mem2reg,instcombine')",
    )
    if not _PIPELINE.fullmatch(text):
        raise wrong
    at = depth = 0
    while at < len(text):
        token = _PIPELINE_TOKEN.match(text, at)
        if token is None:
            raise wrong
        depth += {"(": 1, ")": -1}.get(token.group(0), 0)
        if depth < 0:
            raise wrong
        if token.group(1) is not None and token.group(1) not in PASSES:
            raise InvalidOption(
                name,
                f"{token.group(1)!r} is not a pass pf runs: only LLVM's transformations "
                "of the IR are (no printers, graph writers, viewers or profile passes)",
            )
        at = token.end()
    if depth:
        raise wrong
    return text


@dataclass(frozen=True)
class Options:
    """The compile options users of the original pass, validated.

    ``exports`` of None means "every externally visible function"; a tuple narrows the
    wasm exports to exactly those symbols. ``emscripten`` chooses emcc for C: True asks
    for it, False refuses it, None (the default) takes it for sources that include
    ``<emscripten.h>``.
    """

    opt_level: str = "2"
    parallel: bool = False
    passes: str | None = None
    exports: tuple[str, ...] | None = None
    debug: bool = False
    emscripten: bool | None = None

    NAMES: ClassVar[tuple[str, ...]] = (
        "opt_level",
        "parallel",
        "passes",
        "exports",
        "debug",
        "emscripten",
    )

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> Options:
        """Validate user-supplied options; an unknown name or bad value raises InvalidOption."""
        values: dict[str, Any] = {}
        for name, value in raw.items():
            if value is None:
                continue
            if name == "opt_level":
                text = str(value).strip().upper().removeprefix("O").lower()
                if text not in OPT_LEVELS:
                    raise InvalidOption(name, f"{value!r} is not an optimisation level", OPT_LEVELS)
                values[name] = text
            elif name in {"parallel", "debug", "emscripten"}:
                values[name] = _parse_bool(name, value)
            elif name == "passes":
                values[name] = _parse_passes(name, value)
            elif name == "exports":
                items = value if isinstance(value, list | tuple) else str(value).split(",")
                symbols = tuple(str(item).strip() for item in items if str(item).strip())
                for symbol in symbols:
                    if not is_symbol(symbol):
                        raise InvalidOption(
                            name,
                            f"{shown(symbol)} is not a symbol name "
                            "(letters, digits and '_', not starting with a digit)",
                        )
                values[name] = symbols
            else:
                raise InvalidOption(name, "unknown option", cls.NAMES)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "opt_level": self.opt_level,
            "parallel": self.parallel,
            "passes": self.passes,
            "exports": list(self.exports) if self.exports is not None else None,
            "debug": self.debug,
            "emscripten": self.emscripten,
        }


@dataclass(frozen=True)
class CompileRequest:
    language: str
    target: str
    sources: tuple[SourceFile, ...]
    options: Options = Options()

    @property
    def stem(self) -> str:
        """The base name of the outputs: the first source file's stem."""
        return self.sources[0].stem


@dataclass(frozen=True)
class ToolSpec:
    """How to find one tool, read its version, and install it when missing.

    ``candidates`` are tried in order: absolute paths as they are, bare names on PATH.
    A user can pin the binary with ``PF_TOOL_<NAME>`` (e.g. ``PF_TOOL_CLANG``).
    """

    name: str
    candidates: tuple[str, ...]
    install: str
    version_args: tuple[str, ...] = ("--version",)
    version_pattern: str = r"(\d+\.\d+(?:\.\d+)?)"


@dataclass(frozen=True)
class ToolInfo:
    name: str
    path: str
    version: str
    digest: str


@dataclass(frozen=True)
class Run:
    """Run a tool. ``argv[0]`` is a ToolSpec name; paths are relative to the scratch dir."""

    label: str
    argv: tuple[str, ...]
    ccache: bool = False

    def describe(self) -> tuple[str, ...]:
        return self.argv


@dataclass(frozen=True)
class Transform:
    """Rewrite files in the scratch dir in-process (e.g. retarget LLVM IR).

    ``name`` identifies the transform *and its version* in the cache key: change it
    whenever ``func`` changes behaviour.
    """

    label: str
    name: str
    func: Callable[[Path], None] = field(compare=False)

    def describe(self) -> tuple[str, ...]:
        return ("transform", self.name)


@dataclass(frozen=True)
class Assemble:
    """Assemble one WAT file into one wasm file with ``tool``, a resident assembler.

    The tool is not run per step: a process of it stays up (confined like any step) and
    assembles one module per request. ``source`` and ``output`` are scratch paths.
    """

    label: str
    tool: str
    source: str
    output: str
    debug_names: bool = False

    def describe(self) -> tuple[str, ...]:
        return self.as_run(self.tool).argv

    def as_run(self, tool: str) -> Run:
        """The same assembly as a process of ``tool``, which takes wat2wasm's options."""
        debug = ("--debug-names",) if self.debug_names else ()
        return Run(
            self.label, (tool, *debug, "-o", self.output, END_OF_OPTIONS, operand(self.source))
        )


Step = Run | Transform | Assemble


@dataclass(frozen=True)
class Output:
    """A produced file: path relative to the scratch dir, and its kind."""

    path: str
    kind: str  # "wasm", "llvm", "js"

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name


@dataclass(frozen=True)
class Plan:
    """What a driver will do for one request."""

    steps: tuple[Step, ...]
    outputs: tuple[Output, ...]
    tools: tuple[ToolSpec, ...]
    # Files the driver adds to the scratch dir; digested like sources.
    extra_inputs: tuple[SourceFile, ...] = ()
    # Environment the tools read, beyond the fixed base environment.
    env: Mapping[str, str] = field(default_factory=dict)
    note: str | None = None
    # Inputs built by actions of their own (e.g. a runtime library), placed in the
    # scratch dir before the steps run.
    prebuilt: tuple[Prebuilt, ...] = ()
    # Make-style dependency files the steps write (paths relative to the scratch dir,
    # e.g. clang's `-MD -MF x.d`, rustc's `--emit=dep-info=x.d`): the files they list
    # beyond the request's own inputs are what a cached result also depends on.
    depfiles: tuple[str, ...] = ()

    @property
    def runs_processes(self) -> bool:
        """Whether a step starts a process (a Run): only such a plan needs a sandbox."""
        return any(isinstance(step, Run) for step in self.steps)

    @property
    def in_memory(self) -> bool:
        """Whether every step works on bytes pf holds (Assemble), so the plan needs no
        directory: no process, no Transform, no prebuilt input, no dependency file."""
        return (
            not self.prebuilt
            and not self.depfiles
            and all(isinstance(step, Assemble) for step in self.steps)
        )

    def assembled_by(self, tool: ToolSpec) -> Plan:
        """This plan with each Assemble step run as a process of ``tool`` instead."""
        replaced = {step.tool for step in self.steps if isinstance(step, Assemble)}
        if not replaced:
            return self
        return dataclasses.replace(
            self,
            steps=tuple(
                step.as_run(tool.name) if isinstance(step, Assemble) else step
                for step in self.steps
            ),
            tools=tuple(tool if spec.name in replaced else spec for spec in self.tools),
        )


@dataclass(frozen=True)
class Prebuilt:
    """An input that is the same for every request needing it, such as a runtime library.

    Its ``plan`` is an action of its own, cached like a compile: it runs on the first
    request that needs it (per toolchain version and plan) and is taken from the cache
    afterwards, so a compile does not rebuild it. Its outputs are copied into the
    requesting plan's scratch dir at their own paths. ``name`` says what it is.
    """

    name: str
    plan: Plan


class Driver(Protocol):
    """One toolchain family: the (language, target) pairs it serves and how."""

    id: str
    language: str
    targets: tuple[str, ...]

    def tools(self, target: str) -> tuple[ToolSpec, ...]:
        """The tools ``target`` needs, the one that names the toolchain first."""
        ...

    def plan(self, request: CompileRequest) -> Plan:
        """The steps for ``request``; raises InvalidOption for options it cannot honour."""
        ...

    def diagnostics(self, stderr: str) -> list[Diagnostic]:
        """Structured diagnostics from the tools' stderr."""
        ...
