"""Which tool serves each language x target on this machine, or why none does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pf.config import Settings
from pf.errors import ToolchainMissing
from pf.toolchains import LANGUAGES, TARGETS, get_driver
from pf.toolchains.probe import detect


@dataclass(frozen=True)
class PairStatus:
    language: str
    target: str
    available: bool
    tool: str | None = None
    version: str | None = None
    path: str | None = None
    reason: str | None = None
    install: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def pair_status(language: str, target: str, settings: Settings) -> PairStatus:
    driver = get_driver(language)
    if target not in driver.targets:
        return PairStatus(
            language, target, False, reason=f"pf cannot compile {language} to {target}"
        )
    specs = driver.tools(target)
    try:
        infos = [detect(spec, settings) for spec in specs]
    except ToolchainMissing as missing:
        return PairStatus(language, target, False, reason=missing.message, install=missing.install)
    first = infos[0]
    return PairStatus(language, target, True, first.name, first.version, first.path)


def matrix(settings: Settings) -> list[PairStatus]:
    """The status of every (language, target) pair, languages in their documented order."""
    return [pair_status(lang, target, settings) for lang in LANGUAGES for target in TARGETS]
