"""pf serve: ASGI app translating HTTP and WebSocket requests into engine calls.

Holds no business logic. Imports engine and everything below it.

    app.py         create_app(): routes, middleware, error handlers, lifespan
    api.py         REST handlers of docs/server.md
    schemas.py     request bodies and query strings: bounded reads, types, 4xx refusals
    errors.py      every error as JSON {"error": message, ...}
    ws.py          WebSocket clients: initial status, batched events, subscriptions, limits
    middleware.py  request counting/timing (plain ASGI)
    guard.py       Host, body-type, CORS and WebSocket-Origin checks (plain ASGI)
    auth.py        token scopes, the token/session cache, the auth middleware
    session.py     /api/session: dashboard sign-in with an HttpOnly cookie
    ratelimit.py   per-client token buckets on submissions (429 with Retry-After)
    metrics.py     the Prometheus registry and GET /metrics
    openapi.py     the OpenAPI document (GET /openapi.json)
    logging.py     JSON log lines for the whole process
    run.py         bind, wire store + service + app, run uvicorn (what `pf serve` calls)
    static/        static files and artifact responses
"""
