"""REST handlers for every path in docs/server.md: parse, call the build service, answer JSON.

No business logic lives here: a handler validates its input through schemas.py, makes
one BuildService call and shapes the answer with the original server's field names.
Errors are raised, never answered by hand; errors.py turns them into JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pf import __version__
from pf.engine.catalog import MAX_MODULES
from pf.engine.jobs import iso_time
from pf.engine.layout import TARGET_DIRS, published_path
from pf.errors import NotFound, ToolchainMissing
from pf.server import debug, metrics, schemas, session
from pf.server.auth import Principal
from pf.server.middleware import RequestStats
from pf.server.ratelimit import client_key
from pf.toolchains import LANGUAGES, TARGETS, ToolSpec
from pf.toolchains.matrix import matrix, variants
from pf.toolchains.probe import detect

if TYPE_CHECKING:
    from pf.config import Settings
    from pf.engine.service import BuildService
    from pf.server.records import BuildJson
    from pf.server.ws import Hub
    from pf.store.record import BuildRecord

SERVER_NAME = "pf-api-server"  # the original's value, which its clients display
NODE = ToolSpec("node", ("node", "nodejs"), "apt-get install nodejs", ("--version",), r"v(\S+)")
_ARCH = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "i686": "ia32", "armv7l": "arm"}
_SYSTEM_TTL = 30.0
_LIST_TTL = 1.0


def iso_now() -> str:
    """Now as JavaScript's ``Date.toISOString()`` writes it: ``2024-05-01T12:00:00.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _service(request: Request) -> BuildService:
    service: BuildService = request.app.state.service
    return service


def client_of(request: Request) -> str:
    """Who is asking, for fair scheduling and build ownership: the rate limit's client
    (the authenticated token, else the peer's address), so both count clients alike."""
    return client_key(request.scope)


def _json(request: Request, record: BuildRecord) -> dict[str, Any]:
    build_json: BuildJson = request.app.state.build_json
    return build_json(record)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _queued(record: BuildRecord) -> dict[str, Any]:
    status = record.status
    message = {
        "queued": "Build queued successfully",
        "completed": "Build answered from the cache",
    }.get(status, f"Build {status}")
    return {"buildId": record.id, "status": status, "message": message}


_HEALTH_HEAD = b'{"status":"ok","timestamp":"'
_HEALTH_TAIL = f'","server":"{SERVER_NAME}","version":"{__version__}"}}'.encode()


async def health(request: Request) -> Response:
    # The hottest path of all (load balancers poll it): the body is assembled from bytes.
    body = _HEALTH_HEAD + iso_now().encode() + _HEALTH_TAIL
    return Response(body, media_type="application/json")


def _toolchains(settings: Settings) -> dict[str, dict[str, dict[str, Any]]]:
    """Per language and target, the language's own tool; a variant driver that also
    serves the pair (Emscripten for C) is listed in the entry's ``alternatives``."""
    table: dict[str, dict[str, dict[str, Any]]] = {lang: {} for lang in LANGUAGES}
    for pair in matrix(settings):
        entry = pair.to_dict()
        del entry["language"], entry["target"]
        table[pair.language][pair.target] = entry
    for pair in variants(settings):
        entry = pair.to_dict()
        del entry["language"], entry["target"]
        table[pair.language][pair.target].setdefault("alternatives", []).append(entry)
    return table


def _node_version(settings: Settings) -> str | None:
    try:
        return f"v{detect(NODE, settings).version}"
    except ToolchainMissing:
        return None


class SystemCache:
    """Toolchain probes cost milliseconds; /api/system answers from a copy at most 30 s old."""

    def __init__(self) -> None:
        self.value: tuple[dict[str, Any], str | None] | None = None
        self.at = 0.0
        self.lock = asyncio.Lock()

    async def get(self, settings: Settings) -> tuple[dict[str, Any], str | None]:
        async with self.lock:
            if self.value is not None and time.monotonic() - self.at <= _SYSTEM_TTL:
                return self.value
            value = await asyncio.to_thread(
                lambda: (_toolchains(settings), _node_version(settings))
            )
            self.value, self.at = value, time.monotonic()
            return value


async def system(request: Request) -> Response:
    cache: SystemCache = request.app.state.system_cache
    toolchains, node = await cache.get(_settings(request))
    machine = platform.machine().lower()
    return JSONResponse(
        {
            "platform": sys.platform,
            "arch": _ARCH.get(machine, machine),
            "nodeVersion": node,
            "pythonVersion": platform.python_version(),
            "pid": os.getpid(),
            "cwd": os.getcwd(),
            "rootDir": str(request.app.state.root_dir),
            "availableLanguages": list(LANGUAGES),
            "buildTargets": list(TARGETS),
            "toolchains": toolchains,
        }
    )


async def ready(request: Request) -> Response:
    """Readiness: the store answers, some toolchain serves a pair, and builds are accepted."""
    body = await _service(request).readiness()
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


async def projects(request: Request) -> Response:
    return JSONResponse({"projects": await asyncio.to_thread(_service(request).projects)})


async def modules(request: Request) -> Response:
    """The builds' latest modules at their published paths, then whatever else the web
    root holds under ``wasm/``, ``asm/`` and ``llvm/`` (``pf build`` output served before
    the server built anything): every path a page can fetch, so it never has to probe
    with a request that 404s."""
    root: Path = request.app.state.root_dir
    service = _service(request)
    return JSONResponse(
        {"modules": await asyncio.to_thread(_modules_with_web_root, service.modules(), root)}
    )


def _modules_with_web_root(built: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    # As the static files: a file whose real path (symlinks followed) leaves the web root
    # is not served, so it is not listed either (nor is anything said of its target).
    inside = os.path.realpath(root).rstrip("/") + "/"
    groups = {(entry["target"], entry["language"]): entry for entry in built}
    listed = sum(len(entry["files"]) for entry in built)
    for target in TARGET_DIRS:
        for folder, name, real in _web_files(root / target, inside):
            if listed >= MAX_MODULES:
                break
            entry = groups.setdefault(
                (target, folder), {"language": folder, "target": target, "files": []}
            )
            if any(f["name"] == name for f in entry["files"]):
                continue
            stat = os.stat(real)
            entry["files"].append(
                {
                    "name": name,
                    "path": quote(f"/{published_path(target, folder, name)}"),
                    "size": stat.st_size,
                    "modified": iso_time(stat.st_mtime),
                    "target": target,
                }
            )
            listed += 1
    order = {target: rank for rank, target in enumerate(TARGET_DIRS)}
    return [groups[key] for key in sorted(groups, key=lambda k: (order.get(k[0], 99), k[1]))]


def _web_files(top: Path, inside: str) -> list[tuple[str, str, str]]:
    """``(folder, name relative to it, real path)`` of the files under ``top/<folder>/``,
    at most MAX_MODULES, hidden names and whatever leaves the web root skipped."""
    found: list[tuple[str, str, str]] = []
    try:
        folders = sorted((e for e in os.scandir(top) if e.is_dir()), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return found
    for folder in folders:
        if folder.name.startswith("."):
            continue
        for dirpath, dirnames, filenames in os.walk(folder.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if len(found) >= MAX_MODULES:
                    return found
                if filename.startswith("."):
                    continue
                path = os.path.join(dirpath, filename)
                real = os.path.realpath(path)
                if real.startswith(inside) and os.path.isfile(real):
                    found.append((folder.name, os.path.relpath(path, folder.path), real))
    return found


async def build_all(request: Request) -> Response:
    body = schemas.build_body(await schemas.read_json(request, _settings(request).max_body))
    records, skipped = _service(request).submit_all(
        body.target, body.project, body.options, client=client_of(request)
    )
    await _service(request).recorded()
    _changed(request)
    project = records[0].project if records else body.project
    message = f"{len(records)} builds queued"
    if skipped:
        message += f"; not built: {', '.join(skipped)} (see skipped)"
    answer: dict[str, Any] = {
        "message": message,
        "buildIds": [record.id for record in records],
        "target": body.target,
        "project": project,
    }
    if skipped:
        answer["skipped"] = [{"language": k, "error": v} for k, v in skipped.items()]
    return JSONResponse(answer)


async def build_one(request: Request) -> Response:
    language = request.path_params["language"]
    body = schemas.build_body(await schemas.read_json(request, _settings(request).max_body))
    record = _service(request).submit_build(
        language, body.target, body.project, body.options, client=client_of(request)
    )
    await _service(request).recorded()
    _changed(request)
    return JSONResponse(_queued(record))


async def compile_inline(request: Request) -> Response:
    body = schemas.compile_body(await schemas.read_json(request, _settings(request).max_body))
    record = _service(request).submit_compile(
        body.language, body.target, body.files, body.options, client=client_of(request)
    )
    await _service(request).recorded()
    _changed(request)
    return JSONResponse(_queued(record), status_code=202)


class ListCache:
    """The last encoded build list, reused until any build event, submission or cancel
    (each bumps the hub's generation) or for at most a second: a dashboard polling
    /api/status costs one encoding per change, not one per request."""

    def __init__(self) -> None:
        self.key: tuple[object, ...] | None = None
        self.body = b""
        self.at = 0.0

    def get(self, key: tuple[object, ...]) -> bytes | None:
        if key == self.key and time.monotonic() - self.at < _LIST_TTL:
            return self.body
        return None

    def put(self, key: tuple[object, ...], body: bytes) -> None:
        self.key, self.body, self.at = key, body, time.monotonic()


def _encode(content: object) -> bytes:
    return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()


def _changed(request: Request) -> None:
    hub: Hub = request.app.state.hub
    hub.generation += 1


async def status(request: Request) -> Response:
    service = _service(request)
    # Every parameter is checked before any is acted on: a bad filter is a 400 even
    # beside a buildId that makes it moot.
    limit = schemas.limit_param(request)
    state = schemas.filter_param(request, "status", schemas.STATUS_FILTER)
    # "task": the task runs, whose records carry language "task".
    language = schemas.filter_param(request, "language", schemas.LANGUAGE_FILTER)
    build_id = request.query_params.get("buildId")
    if build_id is not None:
        record = service.get(build_id)
        if record is None:
            raise NotFound("Build not found")
        return JSONResponse(_json(request, record))
    cache: ListCache = request.app.state.list_cache
    hub: Hub = request.app.state.hub
    key = (hub.generation, limit, state, language)
    body = cache.get(key)
    if body is None:
        builds = service.list_builds(limit=limit, status=state, language=language)
        body = _encode({"builds": [_json(request, record) for record in builds]})
        cache.put(key, body)
    return Response(body, media_type="application/json")


async def logs(request: Request) -> Response:
    build_id = request.path_params["build_id"]
    entries = await asyncio.to_thread(_service(request).logs, build_id)
    if entries is None:
        raise NotFound("Build logs not found")
    return JSONResponse({"buildId": build_id, "logs": entries})


async def build_detail(request: Request) -> Response:
    record = _service(request).get(request.path_params["build_id"])
    if record is None:
        raise NotFound("Build not found")
    return JSONResponse(_json(request, record))


async def build_cancel(request: Request) -> Response:
    """Cancel a build: an admin (or anyone while the server is open) any build, a build
    token only those it submitted."""
    principal: Principal | None = request.scope.get("pf.principal")
    by = None if principal is not None and principal.allows("admin") else client_of(request)
    # In shared mode a cancel asks the job queue: off the loop.
    cancel = _service(request).cancel
    record = await asyncio.to_thread(cancel, request.path_params["build_id"], by=by)
    _changed(request)
    return JSONResponse(_json(request, record))


async def artifact(request: Request) -> Response:
    from pf.server.static import file_response

    build_id, path = request.path_params["build_id"], request.path_params["path"]
    # Off the loop: in shared mode the bytes may come from the shared cache.
    found = await asyncio.to_thread(_service(request).artifact, build_id, path)
    if found is None:
        raise NotFound(f"Build {build_id} has no artifact {path!r}")
    return await file_response(
        request, found.path, etag=found.digest, immutable=True, name=found.name
    )


async def tasks(request: Request) -> Response:
    """The tasks of the server's Pfyfile; parsing it (when it changed) runs off the loop."""
    return JSONResponse(await asyncio.to_thread(_service(request).tasks))


async def task_run(request: Request) -> Response:
    """Queue a run of one Pfyfile task (``name`` or ``group:name``) with ``{params}``."""
    params = schemas.task_params(await schemas.read_json(request, _settings(request).max_body))
    name = request.path_params["name"]
    submit = _service(request).submit_task
    record = await asyncio.to_thread(submit, name, params, client=client_of(request))
    await _service(request).recorded()
    _changed(request)
    return JSONResponse(_json(request, record), status_code=202)


async def metrics_json(request: Request) -> Response:
    processes = _settings(request).api_workers
    if processes > 1:
        # Every API process's requests and clients, from the metrics they all write.
        registry = metrics.collected(processes)
        count, seconds = metrics.http_totals(registry)
        clients = int(registry.get_sample_value("pf_ws_connections") or 0)
    else:
        stats: RequestStats = request.app.state.request_stats
        hub: Hub = request.app.state.hub
        count, seconds, clients = stats.count, stats.seconds, hub.connections
    body = {
        "requestCount": count,
        "avgRequestTime": round(seconds / count * 1000, 3) if count else 0.0,
        # Off the loop: in shared mode they are counted in the database.
        **(await asyncio.to_thread(_service(request).metrics)),
        "wsConnections": clients,
    }
    return JSONResponse(body)


async def module_file(request: Request) -> Response:
    """``/<target>/<source folder>/<file>``, the original's URL of a built file (engine.layout):
    the latest build's artifact, else whatever the web root holds at that path."""
    from pf.server.static import file_response

    published = request.scope["path"].lstrip("/")
    service = _service(request)
    found = service.module_file(published)
    if found is None and service.may_find_module(published):
        # Its bytes are not in a file yet, or a pf worker built it and this process may
        # not have heard yet.
        found = await asyncio.to_thread(service.find_module_file, published)
    if found is None:
        return _Delegate(request.app.state.static)
    return await file_response(request, found.path, etag=found.digest, name=found.name)


class _Delegate(Response):
    """Hands the request to another ASGI app (the static files) unchanged."""

    def __init__(self, app: ASGIApp | None) -> None:
        self.app = app
        self.status_code = 404
        self.background = None
        self.raw_headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.app is None:
            raise NotFound(f"No module at {scope['path']}")
        await self.app(scope, receive, send)


ROUTES: list[BaseRoute] = [
    Route("/api/health", health, methods=["GET"]),
    Route("/api/status", status, methods=["GET"]),
    Route("/api/ready", ready, methods=["GET"]),
    Route("/api/system", system, methods=["GET"]),
    Route("/api/projects", projects, methods=["GET"]),
    Route("/api/modules", modules, methods=["GET"]),
    # Before /api/build/{language}: the original's route for "all" was shadowed by it.
    Route("/api/build/all", build_all, methods=["POST"]),
    Route("/api/build/{language}", build_one, methods=["POST"]),
    Route("/api/compile", compile_inline, methods=["POST"]),
    Route("/api/logs/{build_id}", logs, methods=["GET"]),
    Route("/api/builds/{build_id}", build_detail, methods=["GET"]),
    Route("/api/builds/{build_id}", build_cancel, methods=["DELETE"]),
    Route("/api/builds/{build_id}/artifacts/{path:path}", artifact, methods=["GET"]),
    Route("/api/tasks", tasks, methods=["GET"]),
    Route("/api/tasks/{name}", task_run, methods=["POST"]),
    Route("/api/metrics", metrics_json, methods=["GET"]),
    Route("/api/debug/profile", debug.profile, methods=["GET"]),
    Route("/api/debug/memory", debug.memory, methods=["GET"]),
    Route("/api/debug/memory", debug.memory_start, methods=["POST"]),
    Route("/api/debug/memory", debug.memory_stop, methods=["DELETE"]),
    *(
        Route(f"/{target}/{{folder}}/{{name:path}}", module_file, methods=["GET"])
        for target in TARGET_DIRS
    ),
    *session.ROUTES,
]


class UnknownApi:
    """Any other /api path: a JSON 404 (or 405 with ``Allow`` when the path exists for
    other methods), answered before the static files' SPA fallback could send index.html.

    An ASGI object, not a function: Starlette gives a function's route only GET unless
    methods are listed, and any list leaves some method (TRACE, PROPFIND) to fall
    through to the static files; an ASGI object's route takes every method."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from starlette.exceptions import HTTPException

        allowed: set[str] = set()
        for route in ROUTES:
            match, _ = route.matches(scope)
            if match is not Match.NONE and isinstance(route, Route) and route.methods:
                allowed |= route.methods
        if allowed:
            headers = {"Allow": ", ".join(sorted(allowed))}
            raise HTTPException(405, "Method Not Allowed", headers=headers)
        raise NotFound(f"No such endpoint: {scope['method']} {scope['path']}")
