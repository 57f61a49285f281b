"""Turning a build request into a validated Job, or a 4xx error, before anything is queued.

Checks run in the order a user fixes them: language and target (the exact docs/server.md
messages), options (InvalidOption names the option and its allowed values), the project
(NotFound, so HTTP 404; a request naming none gets PF_DEFAULT_PROJECT, else the
catalog's default), its sources, and last the driver's plan, which refuses options the
toolchain cannot honour. The sources are read here, so a build compiles what was on disk
when it was asked for. ``resume`` rebuilds a job recorded as queued before a restart.
Imports engine.jobs, engine.catalog, toolchains, store and config only.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from pf.config import Settings
from pf.engine.catalog import Projects
from pf.engine.jobs import Job, new_build_id
from pf.engine.projects import request_for
from pf.errors import RequestError, Unbuildable, UnsupportedTarget
from pf.store.logs import LogBudget
from pf.toolchains import (
    TARGETS,
    CompileRequest,
    Options,
    Plan,
    SourceFile,
    driver_for,
    driver_for_request,
    get_driver,
)
from pf.toolchains.tools import as_configured


class Intake:
    """Validated Jobs for the three kinds of submission, and for resumed ones."""

    def __init__(self, settings: Settings, projects: Projects) -> None:
        self.settings = settings
        self.projects = projects

    def _job(self, language: str, target: str, project: str | None, options: Options) -> Job:
        return Job(
            id=new_build_id(language, target),
            language=language,
            target=target,
            project=project,
            options=options.to_dict(),
            created_at=time.time(),
            budget=self.budget(),
        )

    def budget(self) -> LogBudget:
        """A fresh log budget for one job (PF_MAX_LOGS_PER_BUILD lines, PF_MAX_LOG_SIZE bytes)."""
        return LogBudget(self.settings.max_logs_per_build, self.settings.max_log_size)

    def build(
        self, language: str, target: str, project: str | None, options: Mapping[str, object]
    ) -> Job:
        """One language of a project (None: the default project)."""
        driver_for(language, target)
        parsed = Options.parse(options)
        found = self.projects.get(project, self.settings.default_project)
        job = self._job(language, target, found.name, parsed)
        job.request = request_for(found, language, target, parsed)
        _plan(job, self.settings)
        return job

    def all(
        self, target: str, project: str | None, options: Mapping[str, object]
    ) -> tuple[list[Job], dict[str, Unbuildable]]:
        """One job per language of the project whose driver serves ``target``, and the
        languages left out because their sources are Unbuildable here, with why."""
        if target not in TARGETS:
            raise UnsupportedTarget(target, TARGETS)
        parsed = Options.parse(options)
        found = self.projects.get(project, self.settings.default_project)
        jobs = []
        skipped: dict[str, Unbuildable] = {}
        for language in found.languages:
            if target in get_driver(language).targets:
                job = self._job(language, target, found.name, parsed)
                job.request = request_for(found, language, target, parsed)
                try:
                    _plan(job, self.settings)
                except Unbuildable as error:
                    skipped[language] = error
                    continue
                jobs.append(job)
        if not jobs:
            if skipped:
                raise next(iter(skipped.values()))
            raise RequestError(f"project {found.name} has no sources that build to {target}")
        return jobs, skipped

    def inline(
        self, language: str, target: str, files: Mapping[str, str], options: Mapping[str, object]
    ) -> Job:
        """Sources sent in the request body (POST /api/compile)."""
        driver_for(language, target)
        parsed = Options.parse(options)
        if not files:
            raise RequestError("files must hold at least one source file: {name: text}")
        job = self._job(language, target, None, parsed)
        job.inline_sources = dict(files)
        self.resume(job)
        return job

    def resume(self, job: Job) -> None:
        """Give a job its request from its record: inline sources, or its project now."""
        if job.kind != "compile":
            raise RequestError(f"{job.kind} runs are not resumed after a restart")
        options = Options.parse(job.options)
        if job.inline_sources is not None:
            sources = tuple(SourceFile(n, t.encode()) for n, t in job.inline_sources.items())
            job.request = CompileRequest(job.language, job.target, sources, options)
        else:
            found = self.projects.get(job.project)
            job.request = request_for(found, job.language, job.target, options)
        job.budget = self.budget()
        _plan(job, self.settings)


def _plan(job: Job, settings: Settings) -> None:
    # The plan validates options against what the driver can honour (InvalidOption), its
    # length spreads the progress of the build's steps, and its tools tell the service
    # whether a cache lookup could have to probe one (BuildService._accept).
    assert job.request is not None
    plan = as_configured(driver_for_request(job.request).plan(job.request), settings)
    job.plan = plan
    job.steps = len(plan.steps)
    job.tools = _tool_names(plan)


def _tool_names(plan: Plan) -> tuple[str, ...]:
    names = {spec.name for spec in plan.tools}
    for item in plan.prebuilt:
        names.update(_tool_names(item.plan))
    return tuple(sorted(names))
