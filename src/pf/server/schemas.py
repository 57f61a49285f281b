"""The HTTP contract's data: a JSON Schema for every request and response body, and the
request validation that runs those very schemas.

One definition per body: ``COMPONENTS`` is what openapi.py publishes under
``components/schemas`` (beside a build's, records.py) and what ``build_body``,
``compile_body`` and ``task_params`` validate against, through validators compiled once
at import (jsonschema-rs, draft 2020-12, the dialect of OpenAPI 3.1). Why JSON Schema
dicts and not models: the published document *is* the validator's input, with no
generator in between whose output could differ from what a model accepts at run time
(pydantic's lax coercions, msgspec's unions); jsonschema-rs already ships with
schemathesis, validates a small body in microseconds, and reports each failure as a
structured kind with its instance path, which is what turns it into a message naming the
field.

What a schema cannot say stays with the engine: whether a driver can honour an option
(``parallel`` for wasm), a file name's full rule, a project that exists. Those refusals
are 400 or 404 too, raised as typed errors by the layer that knows.

Every refusal here is a RequestError (400) naming the field; strings holding a lone
surrogate (``"\\ud800"``) are refused before anything can try to encode them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from starlette.requests import Request

from pf.config import MAX_TRACE_FRAMES
from pf.errors import (
    InvalidOption,
    PfError,
    RequestError,
    UnsupportedLanguage,
    UnsupportedTarget,
)
from pf.server.errors import PayloadTooLarge
from pf.toolchains import LANGUAGES, TARGETS
from pf.toolchains.base import Options

Schema = dict[str, Any]

MAX_FILES = 256
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_NAME = 255  # bytes in one file name part (NAME_MAX), characters here
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
SCOPES = ("read", "build", "admin")


class InvalidBody(RequestError):
    code = "invalid-body"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(required: list[str], props: dict[str, Schema], extra: bool | Schema = True) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": extra,
    }


def null(schema: Schema) -> Schema:
    """``schema`` or null (OpenAPI 3.1 spells nullable as a type list)."""
    kind = schema.get("type")
    if kind is None:
        return {"anyOf": [schema, {"type": "null"}]}
    kinds = kind if isinstance(kind, list) else [kind]
    return {**schema, "type": [*kinds, "null"]}


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
NUM: Schema = {"type": "number"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJ: Schema = {"type": "object", "additionalProperties": True}
TIME: Schema = {"type": "string", "format": "date-time"}

# The option values Options.parse accepts, as a schema; null means "the default". The
# driver still decides whether it can honour a value (parallel needs OpenMP).
_SYMBOL = "[A-Za-z_][A-Za-z0-9_]*"
_FLAG: Schema = {
    "enum": [True, False, "true", "false", "yes", "no", "on", "off", "1", "0", 1, 0, None],
}
OPTIONS: dict[str, Schema] = {
    "opt_level": {
        "type": ["string", "integer", "null"],
        "pattern": "^[Oo]?[0-3sSzZ]$",
        "minimum": 0,
        "maximum": 3,
        "description": "an optimisation level: 0, 1, 2, 3, s or z (O2 reads as 2)",
    },
    "parallel": {**_FLAG, "description": "a boolean: OpenMP (target llvm)"},
    "passes": {
        "type": ["string", "null"],
        "pattern": r"^[A-Za-z0-9_<>(),.=\-]+$",
        "maxLength": 1024,
        "description": "an LLVM pass pipeline such as default<O2> or mem2reg,instcombine",
    },
    "exports": {
        "anyOf": [
            {"type": "string", "pattern": f"^{_SYMBOL}(,{_SYMBOL})*$", "maxLength": 4096},
            {"type": "array", "items": {"type": "string", "pattern": f"^{_SYMBOL}$"}},
            {"type": "null"},
        ],
        "description": "symbol names (a list, or comma-separated) the wasm module exports",
    },
    "debug": {**_FLAG, "description": "a boolean: keep debug information"},
    "emscripten": {
        **_FLAG,
        "description": "a boolean: build C with Emscripten's emcc (default: when a source "
        "includes <emscripten.h>)",
    },
}
assert tuple(OPTIONS) == Options.NAMES, "every option Options.parse takes has a schema"
_OPTIONS_OBJECT: Schema = {
    "type": "object",
    "properties": OPTIONS,
    "additionalProperties": False,
}
_TARGET: Schema = {"type": "string", "enum": list(TARGETS), "default": "wasm"}
_LANGUAGE: Schema = {"type": "string", "enum": list(LANGUAGES)}

REQUESTS: dict[str, Schema] = {
    "BuildRequest": {
        "type": "object",
        "description": "The original's flat body: options may sit beside target and "
        "project, or inside options (which wins).",
        "properties": {
            "target": _TARGET,
            "project": {
                **null(STR),
                "maxLength": MAX_NAME,
                "description": "a project under the projects root (default: PF_DEFAULT_PROJECT, "
                "else pf-web-polyglot-demo-plus-c when there, else the only one)",
            },
            "options": _OPTIONS_OBJECT,
            **OPTIONS,
        },
        "additionalProperties": False,
    },
    "CompileRequest": {
        "type": "object",
        "required": ["language", "files"],
        "properties": {
            "language": _LANGUAGE,
            "target": _TARGET,
            "files": {
                "type": "object",
                "title": "source files",
                # The file name rule has one home, the toolchains' SourceFile (bytes, NFC,
                # leading '-' or '@'...), which names the rule a name breaks.
                "description": "source file name -> source text. A name is relative and "
                "'/'-separated, in Unicode NFC, without control characters, backslashes, "
                "'.' or '..' parts, or parts starting with '-' or '@'; each part at most "
                "255 bytes in UTF-8; not under obj/ or out/",
                "minProperties": 1,
                "maxProperties": MAX_FILES,
                "additionalProperties": {"type": "string", "title": "source text"},
            },
            "options": _OPTIONS_OBJECT,
        },
        "additionalProperties": False,
    },
    "TaskRequest": {
        "type": "object",
        "properties": {
            "params": {
                "type": "object",
                "description": "parameter name -> value, as `pf TASK name=value`; only "
                "parameters the task declares",
                "additionalProperties": {"type": ["string", "number", "boolean"]},
            },
        },
        "additionalProperties": False,
    },
    "SessionRequest": obj(["token"], {"token": {**STR, "description": "an API token"}}, False),
    "TraceRequest": {
        "type": "object",
        "properties": {
            "frames": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_TRACE_FRAMES,
                "default": 1,
                "description": "frames kept per allocation (1: the allocating line only)",
            },
        },
        "additionalProperties": False,
    },
}

RESPONSES: dict[str, Schema] = {
    "Error": obj(
        ["error"],
        {
            "error": {**STR, "description": "what went wrong, in words"},
            "code": {**STR, "description": "stable kebab-case error code"},
            "hint": STR,
            "diagnostics": array(ref("Diagnostic")),
        },
        False,
    ),
    "Diagnostic": obj(
        ["file", "line", "col", "severity", "message"],
        {"file": STR, "line": INT, "col": INT, "severity": STR, "message": STR},
    ),
    "Queued": obj(
        ["buildId", "status", "message"],
        {"buildId": STR, "status": {"type": "string", "enum": list(STATUSES)}, "message": STR},
        False,
    ),
    "LogEntry": obj(
        ["timestamp", "level", "message"],
        {"timestamp": STR, "level": STR, "message": STR, "stdout": null(STR), "stderr": null(STR)},
    ),
    "Task": obj(
        ["id", "name", "group", "description", "params", "aliases"],
        {
            "id": {**STR, "description": "what POST /api/tasks/{name} takes: name or group:name"},
            "name": STR,
            "group": null(STR),
            "description": null(STR),
            "params": array(obj(["name", "default"], {"name": STR, "default": null(STR)})),
            "aliases": array(STR),
        },
    ),
    "Session": obj(
        ["name", "scope", "expires"],
        {"name": STR, "scope": {"type": "string", "enum": list(SCOPES)}, "expires": TIME},
    ),
    "SessionState": obj(
        ["authRequired", "authenticated", "name", "scope"],
        {
            "authRequired": BOOL,
            "authenticated": BOOL,
            "name": null(STR),
            "scope": null({"type": "string", "enum": list(SCOPES)}),
        },
    ),
    "SignedOut": obj(["signedOut"], {"signedOut": {"type": "boolean", "const": True}}),
}

COMPONENTS: dict[str, Schema] = {**REQUESTS, **RESPONSES}

# Query parameters: their schemas are published as they are, and read by the functions
# below.
LIMIT: Schema = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
STATUS_FILTER: Schema = {"type": "string", "enum": list(STATUSES)}
LANGUAGE_FILTER: Schema = {"type": "string", "enum": [*LANGUAGES, "task"]}


def _validator(name: str) -> jsonschema_rs.Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": COMPONENTS}}
    return jsonschema_rs.Draft202012Validator(root)


_VALIDATORS = {name: _validator(name) for name in REQUESTS}
# Escapes of U+D800..U+DFFF in the raw bytes: only then can json.loads yield a surrogate.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _reject_constant(name: str) -> float:
    raise InvalidBody(f"invalid JSON body: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidBody(f"invalid JSON body: the number {text[:40]} is out of range")
    return value


class UnsupportedMediaType(PfError):
    code = "unsupported-media-type"
    http_status = 415

    def __init__(self, method: str, given: str | None) -> None:
        what = f"Content-Type {given!r}" if given is not None else "no Content-Type"
        super().__init__(f"{method} requests take Content-Type: application/json, not {what}")


_CHARSETS = frozenset({"charset=utf-8", 'charset="utf-8"'})


def _json_media(value: str) -> bool:
    media, *params = value.split(";")
    if media.strip().lower() != "application/json":
        return False
    return all(p.strip().lower() in _CHARSETS for p in params if p.strip())


async def read_json(request: Request, limit: int) -> object:
    """The request's JSON body, read as the original's Express parser read it: no bytes
    at all is ``{}``; anything else must be JSON (blank space alone is not).

    It must be declared ``application/json``, even when empty (else 415): a page on
    another site can send a form, ``text/plain`` or no body at all without a CORS
    preflight, and such a request must change nothing.
    """
    content_type = request.headers.get("content-type")
    if content_type is None or not _json_media(content_type):
        raise UnsupportedMediaType(request.method, content_type)
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise InvalidBody(f"invalid Content-Length header {declared!r}")
        if int(declared) > limit:
            raise PayloadTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    # Counted while reading, so a body without Content-Length (chunked) is bounded too.
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        data = json.loads(raw, parse_constant=_reject_constant, parse_float=_finite)
    except RecursionError:
        raise InvalidBody("invalid JSON body: nested too deeply") from None
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        raise InvalidBody(f"invalid JSON body: {exc}") from None
    if _SURROGATE_ESCAPE.search(raw):
        _refuse_surrogates(data, ())
    return data


def _refuse_surrogates(value: object, path: tuple[str, ...]) -> None:
    """Refuse the first string (or key) holding a lone surrogate, naming where it is."""
    if isinstance(value, str):
        if not _encodable(value):
            raise InvalidBody(
                f"{_where(path)} holds a lone surrogate (a \\ud800-\\udfff escape that is "
                "not half of a pair): it is not text"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_surrogates(key, path)
            _refuse_surrogates(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_surrogates(item, (*path, str(index)))


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _where(path: tuple[str, ...]) -> str:
    """How a message names a place in the body: ``field 'target'``, ``file 'a.c'``."""
    if not path:
        return "the request body"
    if len(path) == 2 and path[0] in _CONTAINERS:
        return f"{_CONTAINERS[path[0]]} {_short(path[1])}"
    return f"field {_short('.'.join(path))}"


_CONTAINERS = {"files": "file", "options": "option", "params": "parameter"}


def _short(value: object) -> str:
    """``repr`` cut to 80 characters (repr also escapes any surrogate)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "object": "a JSON object",
    "array": "an array",
    "null": "null",
}


def _expected(schema: Schema) -> str:
    """What a schema asks for, in words: "a string", "a JSON object of source files"."""
    if "enum" in schema and "type" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    kinds = schema.get("type", [])
    words = " or ".join(_TYPE_WORDS[k] for k in (kinds if isinstance(kinds, list) else [kinds]))
    title = schema.get("title")
    return f"{words} of {title}" if title and words else words or "valid"


def _validate(name: str, data: object) -> dict[str, Any]:
    validator = _VALIDATORS[name]
    if validator.is_valid(data):
        assert isinstance(data, dict)
        return data
    errors = sorted(validator.iter_errors(data), key=_rank)
    raise _refusal(errors[0])


_KIND_ORDER = {"required": 0, "type": 1, "additionalProperties": 2}


def _rank(error: jsonschema_rs.ValidationError) -> tuple[int, int]:
    return len(error.instance_path), _KIND_ORDER.get(error.kind.name, 9)


def _schema_at(path: list[str | int]) -> Schema:
    node: Any = {"components": {"schemas": COMPONENTS}}
    for step in path:
        node = node[step]
    return node if isinstance(node, dict) else {}


def _refusal(error: jsonschema_rs.ValidationError) -> RequestError:
    """The user's message for the first schema violation."""
    path = tuple(str(step) for step in error.instance_path)
    kind = error.kind.name
    facts = error.kind.as_dict()
    # The schema node the failed keyword belongs to.
    steps = list(error.schema_path)
    cut = len(steps) - 1 - steps[::-1].index(kind) if kind in steps else len(steps) - 1
    node = _schema_at(steps[:cut])
    value = error.instance
    if kind == "additionalProperties" and "opt_level" in node.get("properties", {}):
        return InvalidOption(str(facts["unexpected"][0]), "unknown option", Options.NAMES)
    option = _option_name(path)
    if option is not None:
        return InvalidOption(option, f"{_short(value)} is not {OPTIONS[option]['description']}")
    where = _where(path)
    if kind == "required":
        name = str(facts["property"])
        wanted = _expected(node["properties"][name])
        return InvalidBody(f"field {name!r} is required: {name!r} must be {wanted}")
    if kind == "additionalProperties":
        unknown = str(facts["unexpected"][0])
        allowed = ", ".join(node.get("properties", {}))
        return InvalidBody(f"unknown field {_short(unknown)}; expected {allowed}")
    if kind == "enum" and path == ("target",):
        return UnsupportedTarget(str(value), TARGETS)
    if kind == "enum" and path == ("language",):
        return UnsupportedLanguage(str(value), LANGUAGES)
    if kind == "minProperties":
        least = "one" if facts["limit"] == 1 else facts["limit"]
        noun = str(node.get("title", "entries")).removesuffix("s")
        return InvalidBody(f"{where} must name at least {least} {noun}")
    if kind == "maxProperties":
        return InvalidBody(f"{where} holds more than {facts['limit']} {node.get('title')}")
    if kind == "maxLength":
        return InvalidBody(f"{where} is longer than {facts['limit']} characters")
    if kind == "type":
        node = {key: node[key] for key in ("type", "title") if key in node}
    return InvalidBody(f"{where} must be {_expected(node)}, not {_kind(value)}")


def _option_name(path: tuple[str, ...]) -> str | None:
    """The option a failure is about: a flat one (build bodies) or one inside options."""
    if len(path) >= 1 and path[0] in OPTIONS:
        return path[0]
    if len(path) >= 2 and path[0] == "options" and path[1] in OPTIONS:
        return path[1]
    return None


@dataclass(frozen=True)
class BuildBody:
    """``POST /api/build/{language}`` and ``/api/build/all``: the original's flat body."""

    target: str = "wasm"
    project: str | None = None
    options: dict[str, object] = field(default_factory=dict)


def build_body(data: object) -> BuildBody:
    """``{target?, project?, <option>: value, ...}``; options may also come as ``options: {}``."""
    body = _validate("BuildRequest", data)
    options = {k: v for k, v in body.items() if k in OPTIONS}
    options.update(body.get("options") or {})
    return BuildBody(body.get("target", "wasm"), body.get("project"), options)


@dataclass(frozen=True)
class CompileBody:
    """``POST /api/compile``: sources in the body instead of a project on disk."""

    language: str
    target: str
    files: dict[str, str]
    options: dict[str, object]


def compile_body(data: object) -> CompileBody:
    body = _validate("CompileRequest", data)
    return CompileBody(
        body["language"], body.get("target", "wasm"), body["files"], body.get("options") or {}
    )


def trace_frames(data: object) -> int:
    """``POST /api/debug/memory``: ``{frames?}``, the frames tracemalloc keeps."""
    frames: int = _validate("TraceRequest", data).get("frames", 1)
    return frames


def task_params(data: object) -> dict[str, str]:
    """``POST /api/tasks/{name}``: ``{params: {name: value}}``, values as the CLI's key=value."""
    body = _validate("TaskRequest", data)
    return dict(_param_words(body.get("params") or {}))


def _param_words(params: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for name, value in params.items():
        if isinstance(value, bool):
            yield name, "true" if value else "false"
        else:
            yield name, str(value)


def limit_param(request: Request) -> int:
    """``?limit=N`` (LIMIT: 1..1000, default 100)."""
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    # Length first: int() of thousands of digits raises (CPython's digit limit).
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidBody(f"query parameter 'limit' must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def filter_param(request: Request, name: str, schema: Schema) -> str | None:
    """An optional query parameter that must be one of ``schema``'s enum."""
    value = request.query_params.get(name)
    if value is None:
        return None
    allowed: list[str] = schema["enum"]
    if value not in allowed:
        raise InvalidBody(f"query parameter {name!r} must be one of: {', '.join(allowed)}")
    return value
