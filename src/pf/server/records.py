"""A build record as the API shows it: its JSON and that JSON's OpenAPI schema, both made
from one table.

``SHOWN`` lists, in the order the JSON has them, the record's fields (store.record) that
the API shows: under which key (camelCase, the original server's names), with which
JSON Schema, written how (times in ISO-8601, durations in ms, artifacts with their
URL). ``HIDDEN`` names the fields the API never shows. ``build_json`` writes a record
from ``SHOWN`` and ``SCHEMAS["Build"]`` describes it from ``SHOWN``, so the two cannot
drift; a field of the record in neither table stops pf at import.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import quote

from pf.engine.jobs import iso_time
from pf.server.schemas import (
    ANY_OBJ,
    BOOL,
    INT,
    NUM,
    STATUSES,
    STR,
    TIME,
    Schema,
    array,
    null,
    obj,
    ref,
)
from pf.store.record import BuildRecord

__all__ = ["HIDDEN", "SCHEMAS", "SHOWN", "BuildJson", "Shown", "build_json"]


@dataclass(frozen=True, slots=True)
class Shown:
    """One field of the record in the API: its key, its schema, how it is written."""

    field: str
    key: str
    schema: Schema
    write: Callable[[BuildRecord], Any]
    required: bool = False
    tasks_only: bool = False  # shown in a task run's record only


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _artifacts(record: BuildRecord) -> list[dict[str, Any]]:
    build = quote(record.id, safe="")
    return [
        {
            "path": a["name"],
            "kind": a["kind"],
            "size": a["size"],
            "digest": a["digest"],
            # Percent-encoded part by part: a source's name becomes its output's, and may
            # hold spaces, '#', '?' or '%'.
            "url": f"/api/builds/{build}/artifacts/{quote(a['name'])}",
        }
        for a in record.artifacts
    ]


SHOWN: tuple[Shown, ...] = (
    Shown("id", "buildId", STR, lambda r: r.id, required=True),
    Shown("kind", "kind", {"type": "string", "enum": ["compile", "task"]}, lambda r: r.kind),
    Shown("language", "language", STR, lambda r: r.language),
    Shown("target", "target", STR, lambda r: r.target),
    Shown("project", "project", null(STR), lambda r: r.project),
    Shown(
        "status",
        "status",
        {"type": "string", "enum": list(STATUSES)},
        lambda r: r.status,
        required=True,
    ),
    Shown(
        "progress",
        "progress",
        {"type": "integer", "minimum": 0, "maximum": 100},
        lambda r: r.progress,
        required=True,
    ),
    Shown("phase", "phase", null(STR), lambda r: r.phase),
    Shown("eta", "eta", null(NUM), lambda r: r.eta),
    Shown("created_at", "createdTime", TIME, lambda r: iso_time(r.created_at)),
    Shown("started_at", "startTime", null(TIME), lambda r: iso_time(r.started_at)),
    Shown("ended_at", "endTime", null(TIME), lambda r: iso_time(r.ended_at)),
    Shown("duration_ms", "duration", null(NUM), lambda r: r.duration_ms),
    Shown("error", "error", null(STR), lambda r: r.error),
    Shown("cached", "cached", BOOL, lambda r: r.cached),
    Shown("artifacts", "artifacts", array(ref("Artifact")), _artifacts),
    Shown(
        "timings",
        "timings",
        {"type": "object", "additionalProperties": NUM},
        lambda r: {name: _ms(seconds) for name, seconds in r.timings.items()},
    ),
    Shown(
        "diagnostics",
        "diagnostics",
        array(ref("Diagnostic")),
        lambda r: [dict(d) for d in r.diagnostics],
    ),
    Shown("options", "options", ANY_OBJ, lambda r: dict(r.options)),
    Shown(
        "task",
        "task",
        {**null(STR), "description": "a task run's task (kind task)"},
        lambda r: r.task,
        tasks_only=True,
    ),
    Shown(
        "params",
        "params",
        {
            "type": "object",
            "additionalProperties": STR,
            "description": "a task run's parameters (kind task)",
        },
        lambda r: dict(r.params or {}),
        tasks_only=True,
    ),
)

# The record's fields the API never shows, and why.
HIDDEN: dict[str, str] = {
    "action_key": "the action cache's key: internal to pf",
    "sources": "a queued inline compile's sources, kept for a restart only",
    "attempt": "which pf worker run wrote the record: internal to shared mode",
    "client": "who submitted the build: a token's name or an address",
}

assert sorted([s.field for s in SHOWN] + list(HIDDEN)) == sorted(
    f.name for f in fields(BuildRecord)
), "each field of the build record is shown or hidden, once"

SCHEMAS: dict[str, Schema] = {
    "Artifact": obj(
        ["path", "size", "digest", "url"],
        {
            "path": STR,
            "size": INT,
            "digest": STR,
            "url": {**STR, "description": "where GET serves it: each path part percent-encoded"},
            "kind": STR,
        },
    ),
    "Build": obj(
        [s.key for s in SHOWN if s.required],
        {s.key: s.schema for s in SHOWN},
    ),
}

_ALWAYS = tuple(s for s in SHOWN if not s.tasks_only)


def build_json(record: BuildRecord) -> dict[str, Any]:
    """The record as clients of docs/server.md read it."""
    shown = SHOWN if record.kind == "task" else _ALWAYS
    return {s.key: s.write(record) for s in shown}


class BuildJson:
    """``build_json`` that writes a finished build's JSON once.

    The service hands out the same record object for a finished build it holds in
    memory, every time: a listing after each change then re-encodes those builds but
    does not write them again (writing costs about twice the encoding). At most
    ``limit`` builds (PF_MAX_BUILDS, the finished builds the service holds), the least
    recently asked for leaving first. Called on the event loop only.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._written: OrderedDict[str, tuple[BuildRecord, dict[str, Any]]] = OrderedDict()

    def __call__(self, record: BuildRecord) -> dict[str, Any]:
        if not record.finished:
            return build_json(record)
        found = self._written.get(record.id)
        if found is not None and found[0] is record:
            self._written.move_to_end(record.id)
            return found[1]
        written = build_json(record)
        self._written[record.id] = (record, written)
        self._written.move_to_end(record.id)
        if len(self._written) > self.limit:
            self._written.popitem(last=False)
        return written
