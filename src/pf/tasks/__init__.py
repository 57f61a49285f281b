"""Task verbs as plans: ``shell`` and its languages, build helpers, system verbs; and the executor.

Each verb is a pure function from plain values (words, paths, a :class:`Context`) to a
:class:`Plan`; :func:`run_plan` applies one through the sandbox. ``HELPER_VERBS`` and
``SYSTEM_VERBS`` map Pfyfile verb names to planners taking the verb's words.
:mod:`pf.tasks.executor` runs resolved Pfyfile tasks with them. Imports dsl, sandbox,
config and errors only; nothing here parses Pfyfiles.

The names below are loaded on first use (PEP 562 ``__getattr__``): ``pf TASK`` imports
``pf.tasks.executor``, and an up-to-date task must not pay the ~50 ms that the verb
modules (dataclasses, subprocess, shutil, the sandbox) cost to import (a no-op run's
budget is 80 ms).
"""

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from pf.tasks.helpers import VERBS as HELPER_VERBS
    from pf.tasks.helpers import (
        BuildSystem,
        autobuild_plan,
        build_detect_plan,
        cargo_plan,
        cmake_plan,
        configure_plan,
        detect_build_system,
        detect_build_systems,
        go_build_plan,
        just_plan,
        make_plan,
        meson_plan,
        ninja_plan,
    )
    from pf.tasks.polyglot import (
        LANGUAGES,
        Language,
        bash_plan,
        code_plan,
        file_plan,
        is_default,
        language,
        shell_plan,
        split_file_ref,
    )
    from pf.tasks.system import VERBS as SYSTEM_VERBS
    from pf.tasks.system import (
        copy_plan,
        directory_plan,
        packages_plan,
        service_plan,
        sync_plan,
    )
    from pf.tasks.tools import (
        TASK_LIMITS,
        Args,
        BadArgument,
        Context,
        CopyPath,
        MakeDir,
        NoBuildSystem,
        Plan,
        PlanResult,
        Run,
        Say,
        Step,
        StepFailed,
        TaskError,
        Tool,
        ToolMissing,
        UnknownLanguage,
        VerbPlanner,
        WriteFile,
        find_tool,
        run_plan,
        split_args,
        suggest,
    )

del TYPE_CHECKING  # not a public name of this package

# public name -> (module, attribute), imported when first asked for.
_LAZY: dict[str, tuple[str, str]] = {
    "Args": ("pf.tasks.tools", "Args"),
    "BadArgument": ("pf.tasks.tools", "BadArgument"),
    "BuildSystem": ("pf.tasks.helpers", "BuildSystem"),
    "Context": ("pf.tasks.tools", "Context"),
    "CopyPath": ("pf.tasks.tools", "CopyPath"),
    "HELPER_VERBS": ("pf.tasks.helpers", "VERBS"),
    "LANGUAGES": ("pf.tasks.polyglot", "LANGUAGES"),
    "Language": ("pf.tasks.polyglot", "Language"),
    "MakeDir": ("pf.tasks.tools", "MakeDir"),
    "NoBuildSystem": ("pf.tasks.tools", "NoBuildSystem"),
    "Plan": ("pf.tasks.tools", "Plan"),
    "PlanResult": ("pf.tasks.tools", "PlanResult"),
    "Run": ("pf.tasks.tools", "Run"),
    "SYSTEM_VERBS": ("pf.tasks.system", "VERBS"),
    "Say": ("pf.tasks.tools", "Say"),
    "Step": ("pf.tasks.tools", "Step"),
    "StepFailed": ("pf.tasks.tools", "StepFailed"),
    "TASK_LIMITS": ("pf.tasks.tools", "TASK_LIMITS"),
    "TaskError": ("pf.tasks.tools", "TaskError"),
    "Tool": ("pf.tasks.tools", "Tool"),
    "ToolMissing": ("pf.tasks.tools", "ToolMissing"),
    "UnknownLanguage": ("pf.tasks.tools", "UnknownLanguage"),
    "VerbPlanner": ("pf.tasks.tools", "VerbPlanner"),
    "WriteFile": ("pf.tasks.tools", "WriteFile"),
    "autobuild_plan": ("pf.tasks.helpers", "autobuild_plan"),
    "bash_plan": ("pf.tasks.polyglot", "bash_plan"),
    "build_detect_plan": ("pf.tasks.helpers", "build_detect_plan"),
    "cargo_plan": ("pf.tasks.helpers", "cargo_plan"),
    "cmake_plan": ("pf.tasks.helpers", "cmake_plan"),
    "code_plan": ("pf.tasks.polyglot", "code_plan"),
    "configure_plan": ("pf.tasks.helpers", "configure_plan"),
    "copy_plan": ("pf.tasks.system", "copy_plan"),
    "detect_build_system": ("pf.tasks.helpers", "detect_build_system"),
    "detect_build_systems": ("pf.tasks.helpers", "detect_build_systems"),
    "directory_plan": ("pf.tasks.system", "directory_plan"),
    "file_plan": ("pf.tasks.polyglot", "file_plan"),
    "find_tool": ("pf.tasks.tools", "find_tool"),
    "go_build_plan": ("pf.tasks.helpers", "go_build_plan"),
    "is_default": ("pf.tasks.polyglot", "is_default"),
    "just_plan": ("pf.tasks.helpers", "just_plan"),
    "language": ("pf.tasks.polyglot", "language"),
    "make_plan": ("pf.tasks.helpers", "make_plan"),
    "meson_plan": ("pf.tasks.helpers", "meson_plan"),
    "ninja_plan": ("pf.tasks.helpers", "ninja_plan"),
    "packages_plan": ("pf.tasks.system", "packages_plan"),
    "run_plan": ("pf.tasks.tools", "run_plan"),
    "service_plan": ("pf.tasks.system", "service_plan"),
    "shell_plan": ("pf.tasks.polyglot", "shell_plan"),
    "split_args": ("pf.tasks.tools", "split_args"),
    "split_file_ref": ("pf.tasks.polyglot", "split_file_ref"),
    "suggest": ("pf.tasks.tools", "suggest"),
    "sync_plan": ("pf.tasks.system", "sync_plan"),
}


def __getattr__(name: str) -> object:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "HELPER_VERBS",
    "LANGUAGES",
    "SYSTEM_VERBS",
    "TASK_LIMITS",
    "Args",
    "BadArgument",
    "BuildSystem",
    "Context",
    "CopyPath",
    "Language",
    "MakeDir",
    "NoBuildSystem",
    "Plan",
    "PlanResult",
    "Run",
    "Say",
    "Step",
    "StepFailed",
    "TaskError",
    "Tool",
    "ToolMissing",
    "UnknownLanguage",
    "VerbPlanner",
    "WriteFile",
    "autobuild_plan",
    "bash_plan",
    "build_detect_plan",
    "cargo_plan",
    "cmake_plan",
    "code_plan",
    "configure_plan",
    "copy_plan",
    "detect_build_system",
    "detect_build_systems",
    "directory_plan",
    "file_plan",
    "find_tool",
    "go_build_plan",
    "is_default",
    "just_plan",
    "language",
    "make_plan",
    "meson_plan",
    "ninja_plan",
    "packages_plan",
    "run_plan",
    "service_plan",
    "shell_plan",
    "split_args",
    "split_file_ref",
    "suggest",
    "sync_plan",
]
