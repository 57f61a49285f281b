"""Which tool serves each language x target on this machine, or why none does.

``matrix`` answers for each language's own driver; ``variants`` for the drivers a request
may choose instead (Emscripten for C), each row naming its driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pf.config import Settings
from pf.errors import ToolchainMissing
from pf.toolchains import LANGUAGES, TARGETS, VARIANTS, Driver, get_driver, get_variant
from pf.toolchains.probe import detect
from pf.toolchains.tools import configured_tools


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
    driver: str | None = None  # set for a variant driver's row

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def pair_status(
    language: str, target: str, settings: Settings, driver: Driver | None = None
) -> PairStatus:
    """How ``language`` -> ``target`` is served: by ``driver``, else the language's own."""
    chosen = driver or get_driver(language)
    named = chosen.id if driver is not None else None
    if target not in chosen.targets:
        return PairStatus(
            language,
            target,
            False,
            reason=f"pf cannot compile {language} to {target}",
            driver=named,
        )
    specs = configured_tools(chosen.tools(target), settings)
    try:
        infos = [detect(spec, settings) for spec in specs]
    except ToolchainMissing as missing:
        return PairStatus(
            language,
            target,
            False,
            reason=missing.message,
            install=missing.install,
            driver=named,
        )
    first = infos[0]
    return PairStatus(language, target, True, first.name, first.version, first.path, driver=named)


def matrix(settings: Settings) -> list[PairStatus]:
    """The status of every (language, target) pair, languages in their documented order."""
    return [pair_status(lang, target, settings) for lang in LANGUAGES for target in TARGETS]


def variants(settings: Settings) -> list[PairStatus]:
    """The status of every (language, target) pair of the variant drivers, by driver."""
    rows = []
    for driver_id, (language, _spec, _summary) in VARIANTS.items():
        driver = get_variant(driver_id)
        rows += [pair_status(language, target, settings, driver) for target in TARGETS]
    return rows
