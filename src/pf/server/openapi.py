"""The OpenAPI 3.0 document of pf serve (``GET /openapi.json``), written by hand.

It describes exactly what api.py answers, errors included, and is what the tests and
schemathesis check the server against: a field added to a response is added here in
the same change. Nullable fields are marked, so a fuzzer's schema check holds for
queued, running and finished builds alike.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pf import __version__
from pf.toolchains import LANGUAGES, TARGETS

Schema = dict[str, Any]

STATUSES = ["queued", "running", "completed", "failed", "cancelled"]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], props: dict[str, Schema], extra: bool = True) -> Schema:
    return {
        "type": "object",
        "required": required,
        "properties": props,
        "additionalProperties": extra,
    }


def _null(schema: Schema) -> Schema:
    return {**schema, "nullable": True}


def _list(items: Schema) -> Schema:
    return {"type": "array", "items": items}


_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer"}
_NUM: Schema = {"type": "number"}
_BOOL: Schema = {"type": "boolean"}
_ANY_OBJ: Schema = {"type": "object", "additionalProperties": True}
_OPTION: Schema = {
    "oneOf": [_STR, _NUM, _BOOL, _list(_STR)],
    "description": "a compile option: opt_level (0-3, s, z), parallel, passes, exports, debug",
}

SCHEMAS: dict[str, Schema] = {
    "Error": _obj(
        ["error"],
        {
            "error": {**_STR, "description": "what went wrong, in words"},
            "code": {**_STR, "description": "stable kebab-case error code"},
            "hint": _STR,
            "diagnostics": _list(_ref("Diagnostic")),
        },
    ),
    "Diagnostic": _obj(
        ["file", "line", "col", "severity", "message"],
        {"file": _STR, "line": _INT, "col": _INT, "severity": _STR, "message": _STR},
    ),
    "Artifact": _obj(
        ["path", "size", "digest"],
        {"path": _STR, "size": _INT, "digest": _STR, "url": _STR, "kind": _STR},
    ),
    "Build": _obj(
        ["buildId", "status", "progress"],
        {
            "buildId": _STR,
            "kind": {"type": "string", "enum": ["compile", "task"]},
            "language": _null(_STR),
            "target": _null(_STR),
            "project": _null(_STR),
            "status": {"type": "string", "enum": STATUSES},
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "phase": _null(_STR),
            "eta": _null(_NUM),
            "createdTime": _null(_STR),
            "startTime": _null(_STR),
            "endTime": _null(_STR),
            "duration": _null(_NUM),
            "error": _null(_STR),
            "cached": _null(_BOOL),
            "artifacts": _list(_ref("Artifact")),
            "timings": _null({"type": "object", "additionalProperties": _NUM}),
            "diagnostics": _null(_list(_ref("Diagnostic"))),
            "task": {**_null(_STR), "description": "a task run's task (kind task)"},
            "params": {
                "type": "object",
                "additionalProperties": _STR,
                "description": "a task run's parameters (kind task)",
            },
        },
    ),
    "Task": _obj(
        ["id", "name", "group", "description", "params", "aliases"],
        {
            "id": {**_STR, "description": "what POST /api/tasks/{name} takes: name or group:name"},
            "name": _STR,
            "group": _null(_STR),
            "description": _null(_STR),
            "params": _list(_obj(["name", "default"], {"name": _STR, "default": _null(_STR)})),
            "aliases": _list(_STR),
        },
    ),
    "TaskRequest": {
        "type": "object",
        "properties": {
            "params": {
                "type": "object",
                "additionalProperties": {"oneOf": [_STR, _NUM, _BOOL]},
                "description": "parameter name -> value, as `pf TASK name=value`; only "
                "parameters the task declares",
            },
        },
        "additionalProperties": False,
    },
    "Queued": _obj(
        ["buildId", "status", "message"],
        {"buildId": _STR, "status": {"type": "string", "enum": STATUSES}, "message": _STR},
    ),
    "BuildRequest": {
        "type": "object",
        "properties": {
            "target": {"type": "string", "enum": list(TARGETS), "default": "wasm"},
            "project": {**_STR, "description": "a project under the projects root"},
            "options": {"type": "object", "additionalProperties": _OPTION},
        },
        "additionalProperties": _OPTION,
    },
    "CompileRequest": {
        "type": "object",
        "required": ["language", "files"],
        "properties": {
            "language": {"type": "string", "enum": list(LANGUAGES)},
            "target": {"type": "string", "enum": list(TARGETS), "default": "wasm"},
            "files": {
                "type": "object",
                "minProperties": 1,
                "additionalProperties": _STR,
                "description": "source file name -> source text",
            },
            "options": {"type": "object", "additionalProperties": _OPTION},
        },
        "additionalProperties": False,
    },
    "LogEntry": _obj(
        ["timestamp", "level", "message"],
        {
            "timestamp": _STR,
            "level": _STR,
            "message": _STR,
            "stdout": _null(_STR),
            "stderr": _null(_STR),
        },
    ),
}

_ERROR_CODES = {
    400: "Invalid request (JSON, types, language, target or option)",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the build's state",
    413: "Request body above PF_MAX_BODY",
    416: "Range not satisfiable (Content-Range: bytes */size)",
    503: "Queue full or store unavailable (see Retry-After), or the server's Pfyfile is invalid",
}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Schema]:
    return {str(code): _json(_ref("Error"), _ERROR_CODES[code]) for code in codes}


def _op(
    summary: str,
    ok: Schema,
    *errors: int,
    status: int = 200,
    params: list[Schema] | None = None,
    body: Schema | None = None,
) -> Schema:
    operation: Schema = {
        "summary": summary,
        "responses": {str(status): _json(ok), **_errors(*errors)},
    }
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body}},
        }
    return operation


def _path_param(name: str, schema: Schema = _STR) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _query(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema}


_BUILD_ID = _path_param("buildId")
_HEALTH = _obj(
    ["status", "timestamp", "server", "version"],
    {
        "status": {"type": "string", "enum": ["ok"]},
        "timestamp": _STR,
        "server": _STR,
        "version": _STR,
    },
)
_SYSTEM = _obj(
    ["platform", "arch", "nodeVersion", "pythonVersion", "cwd", "rootDir"],
    {
        "platform": _STR,
        "arch": _STR,
        "nodeVersion": _null(_STR),
        "pythonVersion": _STR,
        "cwd": _STR,
        "rootDir": _STR,
        "availableLanguages": _list(_STR),
        "buildTargets": _list(_STR),
        "toolchains": {"type": "object", "additionalProperties": _ANY_OBJ},
    },
)
_READY = _obj(
    ["ready", "store", "toolchains"],
    {
        "ready": _BOOL,
        "accepting": _BOOL,
        "store": {"type": "string", "enum": ["ok", "unavailable"]},
        "toolchains": _obj(["available", "total"], {"available": _INT, "total": _INT}),
    },
)
_PROJECTS = _obj(
    ["projects"],
    {
        "projects": _list(
            _obj(
                ["name", "path", "languages"],
                {"name": _STR, "path": _STR, "languages": _list(_STR)},
            )
        )
    },
)
_MODULE_FILE = _obj(
    ["name", "path", "size"], {"name": _STR, "path": _STR, "size": _INT, "modified": _null(_STR)}
)
_MODULES = _obj(
    ["modules"],
    {
        "modules": _list(
            _obj(["language", "files"], {"language": _STR, "files": _list(_MODULE_FILE)})
        )
    },
)
_BUILD_ALL = _obj(
    ["message", "buildIds", "target", "project"],
    {"message": _STR, "buildIds": _list(_STR), "target": _STR, "project": _null(_STR)},
)
_STATUS = {
    "oneOf": [_obj(["builds"], {"builds": _list(_ref("Build"))}, extra=False), _ref("Build")],
}
_LOGS = _obj(["buildId", "logs"], {"buildId": _STR, "logs": _list(_ref("LogEntry"))})
_METRICS = _obj(
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
        "requestCount": _INT,
        "avgRequestTime": _NUM,
        "buildCount": _INT,
        "activeBuilds": _INT,
        "queuedBuilds": _INT,
        "cacheHits": _INT,
        "cacheMisses": _INT,
        "wsConnections": _INT,
        "memoryUsage": {"type": "object", "additionalProperties": _INT},
    },
)

_TASKS = _obj(
    ["tasks"],
    {
        "pfyfile": {**_null(_STR), "description": "the Pfyfile read, or null when none"},
        "tasks": _list(_ref("Task")),
    },
)
_TASK_NAME = {
    **_path_param("name"),
    "description": "a main-scope task (or alias) by name, a group's as group:name",
}

PATHS: dict[str, Schema] = {
    "/api/health": {"get": _op("Liveness", _HEALTH)},
    "/api/ready": {
        "get": {
            **_op("Readiness: the store answers and toolchains are installed", _READY),
            "responses": {"200": _json(_READY), "503": _json(_READY, "Not ready")},
        }
    },
    "/api/system": {"get": _op("Platform, runtimes and toolchains", _SYSTEM)},
    "/api/projects": {"get": _op("Projects under the projects root", _PROJECTS)},
    "/api/modules": {"get": _op("Built modules that can be fetched", _MODULES)},
    "/api/build/all": {
        "post": _op(
            "Build every language of a project that supports the target",
            _BUILD_ALL,
            400,
            404,
            413,
            503,
            body=_ref("BuildRequest"),
        )
    },
    "/api/build/{language}": {
        "post": _op(
            "Build one language of a project",
            _ref("Queued"),
            400,
            404,
            413,
            503,
            params=[_path_param("language")],
            body=_ref("BuildRequest"),
        )
    },
    "/api/compile": {
        "post": _op(
            "Compile sources sent in the body",
            _ref("Queued"),
            400,
            413,
            503,
            status=202,
            body=_ref("CompileRequest"),
        )
    },
    "/api/status": {
        "get": _op(
            "Every recent build, or one with ?buildId=",
            _STATUS,
            400,
            404,
            params=[
                _query("buildId", _STR),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000}),
                _query("status", {"type": "string", "enum": STATUSES}),
                _query("language", {"type": "string", "enum": [*LANGUAGES, "task"]}),
            ],
        )
    },
    "/api/logs/{buildId}": {"get": _op("A build's log", _LOGS, 404, params=[_BUILD_ID])},
    "/api/builds/{buildId}": {
        "get": _op("One build", _ref("Build"), 404, params=[_BUILD_ID]),
        "delete": _op(
            "Cancel a queued or running build", _ref("Build"), 404, 409, params=[_BUILD_ID]
        ),
    },
    "/api/builds/{buildId}/artifacts/{path}": {
        "get": {
            "summary": "An artifact's bytes, with its digest as a strong ETag",
            "parameters": [_BUILD_ID, _path_param("path")],
            "responses": {
                "200": {
                    "description": "The artifact",
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                },
                "206": {"description": "A range of the artifact"},
                "304": {"description": "Not modified"},
                **_errors(404, 416),
            },
        }
    },
    "/api/tasks": {
        "get": {
            **_op("Tasks of the server's Pfyfile", _TASKS, 503),
            "description": "The Pfyfile is the one PFY_FILE names, else Pfyfile.pf in the "
            "projects root, else the nearest Pfyfile.pf from the server's working directory "
            "upward; none: an empty list. One that does not parse: 503 with the rendered "
            "file:line:col message.",
        }
    },
    "/api/tasks/{name}": {
        "post": {
            **_op(
                "Run a Pfyfile task as a job",
                _ref("Build"),
                400,
                404,
                413,
                503,
                status=202,
                params=[_TASK_NAME],
                body=_ref("TaskRequest"),
            ),
            "description": "Queued as a build record of kind task (buildId task-<name>-...), "
            "run through the same queue, workers, logs, events and cancellation "
            "(DELETE /api/builds/{buildId}) as compiles. Unknown task: 404 with a "
            "suggestion; a parameter the task does not declare: 400.",
        }
    },
    "/api/metrics": {"get": _op("Counters of requests, builds, cache and clients", _METRICS)},
}

DOCUMENT: Schema = {
    "openapi": "3.0.3",
    "info": {
        "title": "pf serve",
        "version": __version__,
        "description": "The polyglot build service: the original pf-web-poly-compile-helper-runner "
        "API plus inline compiles, cancellation, artifacts, tasks and metrics. WebSocket "
        "events on /ws (and /) are described in API.md.",
    },
    "paths": PATHS,
    "components": {"schemas": SCHEMAS},
}
_BODY = json.dumps(DOCUMENT, separators=(",", ":")).encode()


async def openapi(request: Request) -> Response:
    return Response(_BODY, media_type="application/json")
