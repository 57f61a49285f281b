"""The executor in-process: value layering, the injected compile hook, reporting, failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pf.dsl import parse_file
from pf.errors import CompileFailed
from pf.tasks.executor import CompileCall, Executor, Reporter
from pf.tasks.params import Invocation


class Recorder(Reporter):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str, str]] = []

    def echo(self, task: str, command: str) -> None:
        self.events.append(("echo", task, command))

    def line(self, task: str, stream: str, text: str) -> None:
        self.events.append((stream, task, text))

    def skipped(self, task: str) -> None:
        self.events.append(("skip", task, ""))


def _executor(tmp_path: Path, text: str, **kwargs: object) -> tuple[Executor, Recorder]:
    (tmp_path / "Pfyfile.pf").write_text(text)
    recorder = Recorder()
    pfyfile = parse_file(tmp_path / "Pfyfile.pf")
    env = {"PATH": "/usr/bin:/bin", "FROM_PROC": "proc", "HOME": str(tmp_path)}
    return Executor(pfyfile, environ=env, reporter=recorder, **kwargs), recorder  # type: ignore[arg-type]


def _run(executor: Executor, name: str, **params: str):  # type: ignore[no-untyped-def]
    task = executor.pfyfile.find(None, name)
    assert task is not None
    return executor.run([Invocation(task, dict(params))])


def test_bind_layers_values(tmp_path: Path) -> None:
    executor, _ = _executor(
        tmp_path,
        'env A=file B="$FROM_PROC-x"\ntask t a="$A" b="${a}2" c\n  shell true\nend\n',
    )
    task = executor.pfyfile.find(None, "t")
    assert task is not None
    values, own = executor.bind(task, {"a": "cli"})
    assert (values["A"], values["B"], values["a"], values["b"]) == ("file", "proc-x", "cli", "cli2")
    assert "c" not in values and own == {"A": "file", "B": "proc-x", "a": "cli", "b": "cli2"}


def test_compile_verb_calls_the_injected_hook(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.c").write_text("int a;")
    (tmp_path / "src" / "b.wat").write_text("(module)")
    calls: list[CompileCall] = []

    def hook(call: CompileCall) -> list[str]:
        calls.append(call)
        return ["compiled"]

    executor, recorder = _executor(
        tmp_path,
        'task c level="3"\n  compile src/*.c src/b.wat target=llvm out=o/$level opt_level=$level '
        "exports=[add, sub]\nend\n",
        compile=hook,
    )
    outcome = _run(executor, "c")
    assert outcome.code == 0 and outcome.ran == ["c"]
    (call,) = calls
    assert call.sources == [str(tmp_path / "src" / "a.c"), str(tmp_path / "src" / "b.wat")]
    assert (call.target, call.out, call.language) == ("llvm", str(tmp_path / "o" / "3"), None)
    assert call.options == {"opt_level": "3", "exports": "add,sub"}
    assert recorder.events == [
        ("echo", "c", "compile src/*.c src/b.wat target=llvm out=o/3 opt_level=3 exports=add,sub"),
        ("stdout", "c", "compiled"),
    ]


def test_a_pf_error_in_a_statement_fails_the_task_with_its_span(tmp_path: Path) -> None:
    def hook(call: CompileCall) -> list[str]:
        raise CompileFailed("the compiler said no")

    executor, _ = _executor(tmp_path, "task c\n  shell true\n  compile x.c\nend\n", compile=hook)
    (tmp_path / "x.c").write_text("")
    outcome = _run(executor, "c")
    assert outcome.code == 1 and outcome.failed == ["c"]
    assert outcome.failure is not None and isinstance(outcome.failure.error, CompileFailed)
    assert outcome.failure.span is not None and outcome.failure.span.line == 3


def test_without_a_hook_compile_is_a_clear_error(tmp_path: Path) -> None:
    executor, _ = _executor(tmp_path, "task c\n  compile x.c\nend\n")
    outcome = _run(executor, "c")
    assert outcome.failure is not None and outcome.failure.error is not None
    assert "pf was started without the engine" in outcome.failure.error.message


@pytest.mark.skipif(sys.platform != "linux", reason="bash semantics")
def test_output_and_exit_codes(tmp_path: Path) -> None:
    executor, recorder = _executor(
        tmp_path,
        "task t\n  shell echo out; echo err >&2\n  shell exit 4\n  shell echo never\nend\n",
    )
    outcome = _run(executor, "t")
    assert outcome.code == 4
    assert ("stdout", "t", "out") in recorder.events and ("stderr", "t", "err") in recorder.events
    assert ("stdout", "t", "never") not in recorder.events


def test_cancel_kills_the_running_command_and_stops_the_run(tmp_path: Path) -> None:
    import threading
    import time

    cancel = threading.Event()
    executor, recorder = _executor(
        tmp_path,
        "task t\n  shell echo started; sleep 30\n  shell echo never\nend\n",
        cancel=cancel,
    )
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    started = time.monotonic()
    outcome = _run(executor, "t")
    assert time.monotonic() - started < 5
    assert outcome.code == 137  # SIGKILL of the command's process group
    assert outcome.failure is not None and outcome.failure.span is not None
    assert outcome.failure.span.line == 2
    assert ("stdout", "t", "started") in recorder.events
    assert all(text != "never" for _, _, text in recorder.events)


def test_a_cancelled_run_starts_no_further_statement(tmp_path: Path) -> None:
    import threading

    cancel = threading.Event()
    cancel.set()
    executor, recorder = _executor(tmp_path, "task t\n  shell echo hi\nend\n", cancel=cancel)
    outcome = _run(executor, "t")
    assert outcome.code == 130
    assert recorder.events == []
