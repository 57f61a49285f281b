"""The OpenAPI 3.1 document of pf serve (``GET /openapi.json``): paths, status codes,
media types, security and links, over the body schemas of schemas.py.

The bodies are not described here: ``components/schemas`` is schemas.COMPONENTS, the
very dicts the handlers validate requests with, so the document and the validation
cannot drift, and records.SCHEMAS, made from the table that writes a build's JSON. What
this module adds is what only HTTP knows: which operation answers which codes (errors
included, each the Error schema), which media types, which headers (Retry-After,
WWW-Authenticate), the scope an operation needs, and the links from a submission's
buildId to the operations that read or cancel that build, which is what lets a stateful
fuzzer follow a build through its life.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pf import __version__
from pf.server import debug, records
from pf.server.schemas import (
    ANY_OBJ,
    BOOL,
    COMPONENTS,
    INT,
    LANGUAGE_FILTER,
    LIMIT,
    NUM,
    STATUS_FILTER,
    STR,
    TIME,
    Schema,
    array,
    null,
    obj,
    ref,
)
from pf.toolchains import LANGUAGES

_RETRY_AFTER: Schema = {
    "description": "seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}
_ERRORS: dict[int, tuple[str, dict[str, Schema]]] = {
    400: (
        "Invalid request (JSON, types, names, options), or a Host header that is not "
        "allowed (code bad-host)",
        {},
    ),
    401: (
        "No valid token or session (code unauthorized)",
        {"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    403: ("The token's scope does not allow this operation (code forbidden)", {}),
    404: ("Not found", {}),
    409: ("Conflict with the build's state: it has already finished", {}),
    413: ("Request body above PF_MAX_BODY", {}),
    415: ("The body is not application/json (code unsupported-media-type)", {}),
    416: ("Range not satisfiable (Content-Range: bytes */size)", {}),
    429: (
        "Too many submissions from this client (code rate-limited)",
        {"Retry-After": _RETRY_AFTER},
    ),
    431: ("Request headers too large", {}),
    503: (
        "Queue full or store unavailable (see Retry-After), or the server's Pfyfile is invalid",
        {"Retry-After": _RETRY_AFTER},
    ),
}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(code: int) -> Schema:
    description, headers = _ERRORS[code]
    answer = _json(ref("Error"), description)
    if headers:
        answer["headers"] = headers
    return answer


def _links(pointer: str) -> dict[str, Schema]:
    """From a submission's answer to the operations on the build it made."""
    build_id = {"buildId": f"$response.body#{pointer}"}
    return {
        "GetBuild": {"operationId": "getBuild", "parameters": build_id},
        "GetBuildLogs": {"operationId": "getBuildLogs", "parameters": build_id},
        "CancelBuild": {"operationId": "cancelBuild", "parameters": build_id},
        "GetStatusOfBuild": {"operationId": "getStatus", "parameters": build_id},
    }


def _op(
    operation_id: str,
    summary: str,
    ok: Schema,
    *errors: int,
    scope: str | None = "read",
    status: int = 200,
    params: list[Schema] | None = None,
    body: str | None = None,
    links: str | None = None,
    description: str = "",
) -> Schema:
    """One operation. ``scope`` None: open to anyone; else the scope it needs (and so
    401/403); every operation may answer 400 (bad Host) and 431; one with a body 413/415."""
    codes = {400, 431, *errors}
    if scope is not None:
        codes |= {401, 403}
    if body is not None:
        codes |= {413, 415}
    answer = _json(ok)
    if links is not None:
        answer["links"] = _links(links)
    access = f"Scope: {scope}." if scope else "Open: no token needed."
    operation: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "description": f"{description} {access}".strip(),
        "responses": {str(status): answer, **{str(c): _error(c) for c in sorted(codes)}},
    }
    if scope is None:
        operation["security"] = [{}]
    if params:
        operation["parameters"] = params
    if body is not None:
        # Required: a POST without a JSON body is what a page on another site can send
        # without a CORS preflight, so pf refuses it (415) even where {} is the body.
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return operation


def _path(name: str, schema: Schema = STR, description: str = "") -> Schema:
    param: Schema = {"name": name, "in": "path", "required": True, "schema": schema}
    if description:
        param["description"] = description
    return param


def _query(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_BUILD_ID = _path("buildId", {**STR, "maxLength": 256})
_SUBMITS = (404, 429, 503)  # every submission: unknown project or task, rate limit, queue

_HEALTH = obj(
    ["status", "timestamp", "server", "version"],
    {
        "status": {"type": "string", "enum": ["ok"]},
        "timestamp": TIME,
        "server": STR,
        "version": STR,
    },
    False,
)
_SYSTEM = obj(
    ["platform", "arch", "nodeVersion", "pythonVersion", "cwd", "rootDir"],
    {
        "platform": STR,
        "arch": STR,
        "nodeVersion": null(STR),
        "pythonVersion": STR,
        "pid": INT,
        "cwd": STR,
        "rootDir": STR,
        "availableLanguages": array(STR),
        "buildTargets": array(STR),
        "toolchains": {"type": "object", "additionalProperties": ANY_OBJ},
    },
)
_READY = obj(
    ["ready", "store", "toolchains"],
    {
        "ready": BOOL,
        "accepting": BOOL,
        "store": {"type": "string", "enum": ["ok", "unavailable"]},
        "disk": {"type": "string", "enum": ["ok", "low"]},
        "sandbox": STR,
        "events": {
            "type": "string",
            "enum": ["ok", "unavailable"],
            "description": "whether events reach the other processes (Redis, when shared)",
        },
        "reason": {**STR, "description": "why the server is not ready"},
        "toolchains": obj(["available", "total"], {"available": INT, "total": INT}),
    },
)
_PROJECTS = obj(
    ["projects"],
    {
        "projects": array(
            obj(["name", "path", "languages"], {"name": STR, "path": STR, "languages": array(STR)})
        )
    },
)
_PUBLISHED = {"type": "string", "enum": ["wasm", "asm", "llvm"]}
_MODULE_FILE = obj(
    ["name", "path", "size"],
    {
        "name": {**STR, "description": "the file's name within its source folder"},
        "path": {
            **STR,
            "pattern": "^/(wasm|asm|llvm)/[^/]+/.+$",
            "description": "where it loads: /<target>/<source folder>/<name>, percent-encoded",
        },
        "size": INT,
        "modified": null(STR),
        "target": _PUBLISHED,
        "digest": {**STR, "description": "SHA-256 of its bytes (built files)"},
        "sourceLanguage": {**STR, "enum": list(LANGUAGES), "description": "built files"},
        "buildId": {**STR, "description": "the build that made it (built files)"},
        "project": {**STR, "description": "the project that build built (built files)"},
        "artifact": {**STR, "description": "the same bytes as that build's artifact URL"},
    },
)
_MODULES = obj(
    ["modules"],
    {
        "modules": array(
            obj(
                ["language", "files"],
                {
                    "language": {
                        **STR,
                        "description": "the source folder (the original's name for it)",
                    },
                    "target": _PUBLISHED,
                    "files": array(_MODULE_FILE),
                },
            )
        )
    },
)
_BUILD_ALL = obj(
    ["message", "buildIds", "target", "project"],
    {
        "message": STR,
        "buildIds": array(STR),
        "target": STR,
        "project": null(STR),
        "skipped": {
            **array(obj(["language", "error"], {"language": STR, "error": STR}, False)),
            "description": "languages left out: sources written for a tool pf cannot run "
            "here (wasm-bindgen), with why",
        },
    },
    False,
)
_STATUS = {"oneOf": [obj(["builds"], {"builds": array(ref("Build"))}, False), ref("Build")]}
_LOGS = obj(["buildId", "logs"], {"buildId": STR, "logs": array(ref("LogEntry"))}, False)
_SITE = obj(
    ["file", "line", "size", "count", "sizeGrowth", "countGrowth"],
    {
        "file": STR,
        "line": INT,
        "size": {**INT, "description": "bytes allocated at this line and still held"},
        "count": {**INT, "description": "blocks allocated at this line and still held"},
        "sizeGrowth": {**null(INT), "description": "bytes more than at the previous look"},
        "countGrowth": {**null(INT), "description": "blocks more than at the previous look"},
    },
    False,
)
_MEMORY = obj(
    ["pid", "frames", "traced", "tracedPeak", "since", "sites"],
    {
        "pid": INT,
        "frames": INT,
        "traced": {**INT, "description": "bytes held by traced allocations"},
        "tracedPeak": INT,
        "since": {**null(NUM), "description": "Unix time of the previous look, if any"},
        "sites": array(_SITE),
    },
    False,
)
_TRACING = obj(["pid", "tracing", "frames"], {"pid": INT, "tracing": BOOL, "frames": INT}, False)
_METRICS = obj(
    [
        "requestCount",
        "avgRequestTime",
        "buildCount",
        "activeBuilds",
        "queuedBuilds",
        "cacheHits",
        "cacheMisses",
        "wsConnections",
        "memoryUsage",
    ],
    {
        "requestCount": INT,
        "avgRequestTime": NUM,
        "buildCount": INT,
        "activeBuilds": INT,
        "queuedBuilds": INT,
        "cacheHits": INT,
        "cacheMisses": INT,
        "wsConnections": INT,
        "memoryUsage": {"type": "object", "additionalProperties": INT},
    },
)
_TASKS = obj(
    ["tasks"],
    {
        "pfyfile": {**null(STR), "description": "the Pfyfile read, or null when none"},
        "tasks": array(ref("Task")),
        "errors": {
            **array(STR),
            "description": "sibling Pfyfiles left out because they do not parse, each "
            "error rendered with its file:line:col",
        },
    },
)
_BYTES: Schema = {"type": "string", "format": "binary"}
# What file_response names an artifact's type by its suffix (.wasm, .js, .ll or .wat).
_ARTIFACT_TYPES = ("application/wasm", "text/javascript", "text/plain", "application/octet-stream")
_ARTIFACT = {
    "get": {
        **_op(
            "getArtifact",
            "An artifact's bytes, with its digest as a strong ETag",
            {},
            404,
            416,
            params=[
                _BUILD_ID,
                _path("path", description="the artifact's path, as its record's url spells it"),
            ],
        ),
    }
}
_ARTIFACT["get"]["responses"]["200"] = {
    "description": "The artifact, in its media type",
    "content": {media: {"schema": _BYTES} for media in _ARTIFACT_TYPES},
}
_ARTIFACT["get"]["responses"]["206"] = {
    "description": "A range of the artifact",
    "headers": {"Content-Range": {"schema": {"type": "string"}}},
    "content": {media: {"schema": _BYTES} for media in _ARTIFACT_TYPES},
}
_ARTIFACT["get"]["responses"]["304"] = {"description": "Not modified (If-None-Match)"}

_SESSION_DOC = (
    "The dashboard's sign-in: a token exchanged for an HttpOnly SameSite=Strict cookie "
    "pf_session, sent back on later requests."
)

PATHS: dict[str, Schema] = {
    "/api/health": {"get": _op("getHealth", "Liveness", _HEALTH, scope=None)},
    "/api/ready": {
        "get": _op(
            "getReady",
            "Readiness: the store answers and toolchains are installed",
            _READY,
            scope=None,
        )
    },
    "/api/session": {
        "get": _op(
            "getSession",
            "Whether authentication is required and who is signed in",
            ref("SessionState"),
            scope=None,
            description=_SESSION_DOC,
        ),
        "post": {
            **_op(
                "createSession",
                "Sign in: exchange a token for a session cookie",
                ref("Session"),
                401,
                scope=None,
                body="SessionRequest",
                description=_SESSION_DOC,
            ),
        },
        "delete": _op(
            "deleteSession",
            "Sign out: the session cookie is cleared",
            ref("SignedOut"),
            scope=None,
            description=_SESSION_DOC,
        ),
    },
    "/api/system": {"get": _op("getSystem", "Platform, runtimes and toolchains", _SYSTEM)},
    "/api/projects": {"get": _op("getProjects", "Projects under the projects root", _PROJECTS)},
    "/api/modules": {"get": _op("getModules", "Built modules that can be fetched", _MODULES)},
    "/api/build/all": {
        "post": _op(
            "buildAll",
            "Build every language of a project that supports the target",
            _BUILD_ALL,
            *_SUBMITS,
            scope="build",
            body="BuildRequest",
            links="/buildIds/0",
        ),
    },
    "/api/build/{language}": {
        "post": _op(
            "buildLanguage",
            "Build one language of a project",
            ref("Queued"),
            *_SUBMITS,
            scope="build",
            body="BuildRequest",
            links="/buildId",
            params=[_path("language", {"type": "string", "enum": list(LANGUAGES)})],
        ),
    },
    "/api/compile": {
        "post": _op(
            "compile",
            "Compile sources sent in the body",
            ref("Queued"),
            *_SUBMITS,
            scope="build",
            status=202,
            body="CompileRequest",
            links="/buildId",
        ),
    },
    "/api/status": {
        "get": _op(
            "getStatus",
            "Every recent build, or one with ?buildId=",
            _STATUS,
            404,
            params=[
                _query("buildId", {**STR, "maxLength": 256}),
                _query("limit", LIMIT),
                _query("status", STATUS_FILTER),
                _query("language", LANGUAGE_FILTER),
            ],
        ),
    },
    "/api/logs/{buildId}": {
        "get": _op("getBuildLogs", "A build's log", _LOGS, 404, params=[_BUILD_ID]),
    },
    "/api/builds/{buildId}": {
        "get": _op("getBuild", "One build", ref("Build"), 404, params=[_BUILD_ID]),
        "delete": _op(
            "cancelBuild",
            "Cancel a queued or running build",
            ref("Build"),
            404,
            409,
            scope="build",
            params=[_BUILD_ID],
            description="The record answered shows status cancelled. Cancelling a build "
            "that has finished (completed, failed, or already cancelled, so also a second "
            "cancel) is 409 and changes nothing. A build scope cancels its own builds; "
            "admin any.",
        ),
    },
    "/api/builds/{buildId}/artifacts/{path}": _ARTIFACT,
    "/api/tasks": {
        "get": _op(
            "getTasks",
            "Tasks of the server's Pfyfile",
            _TASKS,
            503,
            scope="admin",
            description="The Pfyfile is the one PFY_FILE names, else Pfyfile.pf in "
            "the projects root, else the nearest Pfyfile.pf from the server's "
            "working directory upward; none: an empty list. One that does not "
            "parse: 503 with the rendered file:line:col message; a sibling "
            "Pfyfile.<group>.pf that does not parse is left out and listed in errors "
            "(running one of its tasks, group:task, is that 503).",
        ),
    },
    "/api/tasks/{name}": {
        "post": _op(
            "runTask",
            "Run a Pfyfile task as a job",
            ref("Build"),
            *_SUBMITS,
            scope="admin",
            status=202,
            body="TaskRequest",
            links="/buildId",
            params=[
                _path(
                    "name",
                    {**STR, "maxLength": 256},
                    "a main-scope task (or alias) by name, a group's as group:name",
                )
            ],
            description="Queued as a build record of kind task (buildId task-<name>-...), "
            "run through the same queue, workers, logs, events and cancellation "
            "(DELETE /api/builds/{buildId}) as compiles. Unknown task: 404 with a "
            "suggestion; a parameter the task does not declare: 400.",
        ),
    },
    "/api/metrics": {
        "get": _op("getMetrics", "Counters of requests, builds, cache and clients", _METRICS),
    },
    "/metrics": {
        "get": {
            **_op("getPrometheusMetrics", "Every metric in the Prometheus text format", {}),
        }
    },
    "/openapi.json": {
        "get": _op("getOpenApi", "This document", {"type": "object"}, scope=None),
    },
    "/api/debug/profile": {
        "get": _op(
            "getProfile",
            "Sample this process for a few seconds and answer the profile",
            {},
            409,
            scope="admin",
            params=[
                _query(
                    "seconds",
                    {"type": "number", "exclusiveMinimum": 0, "default": 5},
                ),
                _query("format", debug.PROFILE_FORMAT),
            ],
            description="pyinstrument samples the event-loop thread of the API process "
            "that took the connection for `seconds` (at most PF_PROFILE_MAX_SECONDS, "
            "else 400), then answers its HTML page, or speedscope JSON with "
            "format=speedscope. One profile at a time per process: 409 while one runs.",
        ),
    },
    "/api/debug/memory": {
        "get": _op(
            "getMemory",
            "The allocation sites holding the most memory, and their growth",
            _MEMORY,
            409,
            scope="admin",
            params=[_query("top", debug.TOP)],
            description="tracemalloc's top `top` sites (file and line) of the API process "
            "that took the connection, each with its growth since that process's previous "
            "look (null when it was not among the sites kept then). 409 while allocations "
            "are not traced: POST here first, or set PF_TRACEMALLOC.",
        ),
        "post": _op(
            "startMemoryTracing",
            "Start tracing allocations in this process",
            _TRACING,
            scope="admin",
            body="TraceRequest",
            description="Costs time and memory on every allocation until DELETE. No "
            "change when already tracing.",
        ),
        "delete": _op(
            "stopMemoryTracing",
            "Stop tracing allocations in this process",
            _TRACING,
            scope="admin",
        ),
    },
}
PATHS["/api/debug/profile"]["get"]["responses"]["200"] = {
    "description": "pyinstrument's HTML page, or speedscope JSON (format=speedscope)",
    "content": {"text/html": {"schema": STR}, "application/json": {"schema": ANY_OBJ}},
}
# Not ready is an answer, not an error: the same body, with 503.
PATHS["/api/ready"]["get"]["responses"]["503"] = _json(_READY, "Not ready")
PATHS["/metrics"]["get"]["responses"]["200"] = {
    "description": "Prometheus text exposition format",
    "content": {"text/plain": {"schema": STR}},
}

DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "pf serve",
        "version": __version__,
        "description": "The polyglot build service: the original pf-web-poly-compile-helper-"
        "runner API plus inline compiles, cancellation, artifacts, tasks and metrics. Every "
        "/api answer is application/json, errors included ({error, code, hint?}). "
        "WebSocket events on /ws (and /) are described in docs/server.md.",
    },
    "security": [{"bearerAuth": []}, {"cookieAuth": []}],
    "paths": PATHS,
    "components": {
        "schemas": {**COMPONENTS, **records.SCHEMAS},
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "a token from `pf token create NAME --scope read|build|admin`",
            },
            "cookieAuth": {
                "type": "apiKey",
                "in": "cookie",
                "name": "pf_session",
                "description": "the session POST /api/session sets",
            },
        },
    },
}
_BODY = json.dumps(DOCUMENT, separators=(",", ":")).encode()


def document() -> dict[str, Any]:
    """A fresh copy of the document (for tests and tools that may change it)."""
    loaded: dict[str, Any] = json.loads(_BODY)
    return loaded


async def openapi(request: Request) -> Response:
    return Response(_BODY, media_type="application/json")
