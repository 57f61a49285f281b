"""Fixtures for the task-verb tests: a Context in tmp_path and a plan runner that records output."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pf.config import load_settings
from pf.tasks import Context, Plan, PlanResult, Step, run_plan


@dataclass
class Ran:
    """What running a plan produced: its result, stdout/stderr lines, echoed steps."""

    result: PlanResult
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)
    echoed: list[str] = field(default_factory=list)

    @property
    def stdout(self) -> str:
        return "\n".join(self.out)


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


@pytest.fixture
def ctx(work: Path) -> Context:
    # The executor hands verbs the full process environment merged with task values;
    # the real environment (PATH, HOME for rustup and cargo) stands in for it here.
    return Context(cwd=work, env=dict(os.environ), settings=load_settings())


def execute(plan: Plan) -> Ran:
    lines: list[tuple[str, str]] = []
    echoed: list[str] = []

    def on_step(step: Step) -> None:
        echoed.append(step.describe())

    result = run_plan(plan, on_line=lambda s, t: lines.append((s, t)), on_step=on_step)
    return Ran(
        result,
        [t for s, t in lines if s == "stdout"],
        [t for s, t in lines if s == "stderr"],
        echoed,
    )


@pytest.fixture
def run() -> Callable[[Plan], Ran]:
    return execute
