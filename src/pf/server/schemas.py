"""Request bodies and query strings: read within PF_MAX_BODY, parse, check types, or refuse.

Every refusal is a PfError with a 4xx status and a message naming the field, so the
handlers in api.py only see well-typed values. Option *values* are checked here for
shape only (a scalar or a list of names); their meaning is checked by
``Options.parse`` in the engine, which names the option and its allowed values.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from pf.errors import InvalidOption, RequestError
from pf.server.errors import PayloadTooLarge

MAX_FILES = 256
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_BUILD_FIELDS = ("target", "project", "options")


class InvalidBody(RequestError):
    code = "invalid-body"


async def read_json(request: Request, limit: int) -> object:
    """The request's JSON body; an empty body reads as ``{}`` (as Express's parser did)."""
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
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except RecursionError:
        raise InvalidBody("invalid JSON body: nested too deeply") from None
    except ValueError as exc:  # includes UnicodeDecodeError and JSONDecodeError
        raise InvalidBody(f"invalid JSON body: {exc}") from None


def _object(data: object, what: str = "request body") -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidBody(f"{what} must be a JSON object, not {_kind(data)}")
    return data


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


def _string(obj: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = obj.get(name, default)
    if value is None:
        raise InvalidBody(f"field {name!r} is required")
    if not isinstance(value, str):
        raise InvalidBody(f"field {name!r} must be a string, not {_kind(value)}")
    return value


def _optional_string(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidBody(f"field {name!r} must be a string, not {_kind(value)}")
    return value


def _option_value(name: str, value: object) -> object:
    """Refuse shapes no option takes; the engine checks the values themselves."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidOption(name, f"{value!r} is not a finite number")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise InvalidOption(
        name, f"expected a string, number, boolean or list of strings, not {_kind(value)}"
    )


def _options(raw: Mapping[str, Any]) -> dict[str, object]:
    return {str(name): _option_value(str(name), value) for name, value in raw.items()}


@dataclass(frozen=True)
class BuildBody:
    """``POST /api/build/{language}`` and ``/api/build/all``: the original's flat body."""

    target: str = "wasm"
    project: str | None = None
    options: dict[str, object] = field(default_factory=dict)


def build_body(data: object) -> BuildBody:
    """``{target?, project?, <option>: value, ...}``; options may also come as ``options: {}``."""
    obj = _object(data)
    options = _options({k: v for k, v in obj.items() if k not in _BUILD_FIELDS})
    nested = obj.get("options")
    if nested is not None:
        options.update(_options(_object(nested, "field 'options'")))
    return BuildBody(_string(obj, "target", "wasm"), _optional_string(obj, "project"), options)


@dataclass(frozen=True)
class CompileBody:
    """``POST /api/compile``: sources in the body instead of a project on disk."""

    language: str
    target: str
    files: dict[str, str]
    options: dict[str, object]


def compile_body(data: object) -> CompileBody:
    obj = _object(data)
    unknown = sorted(set(obj) - {"language", "target", "files", "options"})
    if unknown:
        raise InvalidBody(
            f"unknown field {unknown[0]!r}; expected language, target, files, options"
        )
    files = _object(obj.get("files"), "field 'files'")
    if not files:
        raise InvalidBody("field 'files' must name at least one source file")
    if len(files) > MAX_FILES:
        raise InvalidBody(f"field 'files' holds {len(files)} files; at most {MAX_FILES}")
    for name, text in files.items():
        if not isinstance(text, str):
            raise InvalidBody(f"file {name!r} must be a string of source text, not {_kind(text)}")
    raw_options = obj.get("options")
    options = _options(_object(raw_options, "field 'options'")) if raw_options is not None else {}
    return CompileBody(_string(obj, "language"), _string(obj, "target", "wasm"), files, options)


def task_params(data: object) -> dict[str, str]:
    """``POST /api/tasks/{name}``: ``{params: {name: value}}``, values as the CLI's key=value."""
    obj = _object(data)
    unknown = sorted(set(obj) - {"params"})
    if unknown:
        raise InvalidBody(f"unknown field {unknown[0]!r}; expected params")
    raw = obj.get("params")
    params = _object(raw, "field 'params'") if raw is not None else {}
    out: dict[str, str] = {}
    for name, value in params.items():
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int) or (isinstance(value, float) and math.isfinite(value)):
            out[name] = str(value)
        else:
            raise InvalidBody(f"parameter {name!r} must be a string, number or boolean")
    return out


def limit_param(request: Request) -> int:
    """``?limit=N`` (1..1000, default 100)."""
    raw = request.query_params.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidBody(f"query parameter 'limit' must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


def filter_param(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    """An optional query parameter that must be one of ``allowed``."""
    value = request.query_params.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise InvalidBody(f"query parameter {name!r} must be one of: {', '.join(allowed)}")
    return value
