"""The web side of pools: the snippet, its public endpoints, the sample pages, and the admin's pool views.

Public endpoints face the internet, so each request is checked strictly: a size cap, known keys only, bounded
strings, the pool's site key, CORS and an Origin check against the pool's allowed origins, and a per-address
rate limit. A session's own secret token is the only way to its lease, so no request can reach another
visitor's data.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.openapi import json_content as _json, error_content as _err
from ari_app.tracking.model import Pool
from ari_app.tracking.service import TrackingService
from ari_app.tracking.store import VISIT_FIELDS, Visit
from storage.db import utcnow

STATIC = Path(__file__).parent / "static"
SAMPLES = Path(__file__).resolve().parents[2] / "web" / "sample"
MAX_BODY = 8 * 1024
CONTROL_RE = re.compile(r"[\x00-\x1f]")
URL_RE = re.compile(r"^https?://[^\s]{1,2040}$")
TOKEN_RE = re.compile(r"^s_[A-Za-z0-9_-]{20,64}$")
POOL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{16,80}$")
GA_RE = re.compile(r"^[0-9]{1,12}\.[0-9]{1,12}$")
VAR_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
SAMPLE_RE = re.compile(r"^[a-z0-9-]{1,40}\.html$")
SESSION_RE = re.compile(r"^vs_[0-9a-f]{16}$")
NUMBER_PATH_RE = re.compile(r"^\+?[0-9]{3,20}$")
BODY_KEYS = {
    "sessions": {"pool", "key", "token", "page", "referrer", "title", "ga_client_id", "params", "device", "vars",
                 "vars_mode"},
    "pageview": {"pool", "key", "token", "page", "referrer", "title", "vars", "vars_mode"},
    "click": {"pool", "key", "token", "element"},
}
CORS_HEADERS = {"Access-Control-Allow-Methods": "POST, OPTIONS", "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Max-Age": "600", "Vary": "Origin"}


class BadRequest(Exception):
    pass


class RateLimiter:
    """A token bucket per (pool, address): ``rate`` requests a minute, bursts of half that."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.buckets: dict[tuple[str, str], tuple[float, float]] = {}

    def allow(self, pool: Pool, address: str) -> bool:
        now = self.clock()
        capacity = max(1.0, pool.rate_limit / 2)
        tokens, last = self.buckets.get((pool.name, address), (capacity, now))
        tokens = min(capacity, tokens + (now - last) * pool.rate_limit / 60.0)
        if len(self.buckets) > 100_000:  # bounded memory under a flood of addresses
            self.buckets.clear()
        if tokens < 1:
            self.buckets[(pool.name, address)] = (tokens, now)
            return False
        self.buckets[(pool.name, address)] = (tokens - 1, now)
        return True


def _text(body: dict[str, Any], name: str, limit: int, pattern: re.Pattern[str] | None = None) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit or CONTROL_RE.search(value):
        raise BadRequest(f"{name}: expected text of at most {limit} characters")
    if pattern is not None and not pattern.match(value):
        raise BadRequest(f"{name}: invalid value")
    return value


def _visit(body: dict[str, Any]) -> Visit:
    params_raw = body.get("params") or {}
    if not isinstance(params_raw, dict):
        raise BadRequest("params: expected an object")
    unknown = sorted(set(params_raw) - set(VISIT_FIELDS))
    if unknown:
        raise BadRequest(f"params: unknown key(s) {', '.join(unknown)[:200]}")
    params = {k: v for k in VISIT_FIELDS if (v := _text(params_raw, k, 200)) is not None}
    device_raw = body.get("device")
    device = None
    if device_raw is not None:
        if not isinstance(device_raw, dict) or set(device_raw) - {"ua", "width", "height", "touch"}:
            raise BadRequest("device: expected {ua, width, height, touch}")
        device = {"ua": _text(device_raw, "ua", 400)}
        for dim in ("width", "height"):
            value = device_raw.get(dim)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100000):
                raise BadRequest(f"device.{dim}: expected a whole number of pixels")
            device[dim] = value
        if device_raw.get("touch") is not None and not isinstance(device_raw["touch"], bool):
            raise BadRequest("device.touch: expected true or false")
        device["touch"] = device_raw.get("touch")
    vars_raw = body.get("vars")
    variables = None
    if vars_raw is not None:
        if not isinstance(vars_raw, dict) or len(vars_raw) > 20:
            raise BadRequest("vars: expected an object of at most 20 text values")
        variables = {}
        for key in vars_raw:
            if not VAR_RE.match(str(key)):
                raise BadRequest("vars: keys are 1-40 letters, digits, '.', '_' or '-'")
            variables[key] = _text(vars_raw, key, 200) or ""
    mode = body.get("vars_mode", "replace")
    if mode not in ("replace", "add", "overwrite"):
        raise BadRequest("vars_mode: replace, add or overwrite")
    return Visit(page=_text(body, "page", 2048, URL_RE), referrer=_text(body, "referrer", 2048, URL_RE),
                 title=_text(body, "title", 300), ga_client_id=_text(body, "ga_client_id", 30, GA_RE),
                 params=params, device=device, vars=variables, vars_mode=mode)


def add_public_routes(app: web.Application, service: TrackingService) -> None:
    limiter = RateLimiter()
    snippet = (STATIC / "t.js").read_bytes() if (STATIC / "t.js").exists() else b""
    all_origins = {o for p in service.pools.values() for o in p.allowed_origins}

    def cors(request: web.Request, pool: Pool | None) -> dict[str, str]:
        origin = request.headers.get("Origin")
        allowed = pool.allowed_origins if pool else all_origins
        if origin and origin in allowed:
            return {"Access-Control-Allow-Origin": origin, **CORS_HEADERS}
        return {"Vary": "Origin"}

    def fail(request: web.Request, status: int, message: str, pool: Pool | None = None, **headers: str) -> web.Response:
        return web.json_response({"error": message}, status=status, headers={**cors(request, pool), **headers})

    async def body_of(request: web.Request, kind: str) -> dict[str, Any]:
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise BadRequest("request body too large")
        if request.content_type not in ("application/json", "text/plain"):
            raise BadRequest("send JSON as application/json or text/plain")
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise BadRequest("request body too large")
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("body: not JSON") from None
        if not isinstance(body, dict):
            raise BadRequest("body: expected a JSON object")
        unknown = sorted(set(body) - BODY_KEYS[kind])
        if unknown:
            raise BadRequest(f"unknown key(s): {', '.join(unknown)[:200]}")
        return body

    def endpoint(kind: str, handle: Callable[[web.Request, Pool, dict[str, Any]], Awaitable[web.Response]]) -> Any:
        async def handler(request: web.Request) -> web.Response:
            try:
                body = await body_of(request, kind)
                pool_name = _text(body, "pool", 40, POOL_RE)
                key = _text(body, "key", 80, KEY_RE)
                if not pool_name or not key:
                    raise BadRequest("pool and key are required")
            except BadRequest as exc:
                return fail(request, 400, str(exc))
            pool = service.check_site_key(pool_name, key)
            if pool is None:
                return fail(request, 403, "unknown pool or wrong site key")
            origin = request.headers.get("Origin")
            if origin is not None and origin not in pool.allowed_origins:
                return fail(request, 403, f"origin {origin[:100]} is not allowed for this pool")
            if not limiter.allow(pool, request.remote or "?"):
                return fail(request, 429, "too many requests", pool, **{"Retry-After": "5"})
            try:
                response = await handle(request, pool, body)
            except BadRequest as exc:
                return fail(request, 400, str(exc), pool)
            response.headers.update(cors(request, pool))
            response.headers["Cache-Control"] = "no-store"
            return response

        return handler

    def session_token(body: dict[str, Any]) -> str | None:
        """A token that is malformed is as good as unknown: the visitor gets a new session, not an error."""
        token = body.get("token")
        return token if isinstance(token, str) and TOKEN_RE.match(token) else None

    async def sessions(request: web.Request, pool: Pool, body: dict[str, Any]) -> web.Response:
        return web.json_response(await service.visit(pool, _visit(body), session_token(body)))

    async def pageview(request: web.Request, pool: Pool, body: dict[str, Any]) -> web.Response:
        return web.json_response(await service.visit(pool, _visit(body), session_token(body)))

    async def click(request: web.Request, pool: Pool, body: dict[str, Any]) -> web.Response:
        token = _text(body, "token", 80, TOKEN_RE)
        if token is None:
            raise BadRequest("token is required")
        _text(body, "element", 200)
        if not await service.click(pool, token, body.get("element")):
            raise BadRequest("unknown session")
        return web.Response(status=204)

    async def preflight(request: web.Request) -> web.Response:
        return web.Response(status=204, headers=cors(request, None))

    async def script(_request: web.Request) -> web.Response:
        return web.Response(body=snippet, content_type="application/javascript", charset="utf-8",
                            headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"})

    async def sample(request: web.Request) -> web.Response:
        """The sample landing pages, with the snippet tag filled in for a pool of the running configuration."""
        name = request.match_info["name"]
        path = SAMPLES / name
        if not SAMPLE_RE.match(name) or not path.is_file():
            return web.json_response({"error": "no such sample page"}, status=404)
        mode = "extension" if name.startswith("ext") else "pool"
        wanted = request.query.get("pool")
        pool = service.pools.get(wanted) if wanted else next(
            (p for p in service.pools.values() if p.mode == mode), None)
        if pool is None:
            return web.json_response({"error": f"no {mode} pool configured for this sample"}, status=404)
        html = path.read_text(encoding="utf-8")
        for placeholder, value in (("{{api}}", f"{request.scheme}://{request.host}"), ("{{pool}}", pool.name),
                                   ("{{key}}", service.site_keys[pool.name])):
            html = html.replace(placeholder, value)
        return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})

    app.router.add_get("/t.js", script)
    for kind, handle in (("sessions", sessions), ("pageview", pageview), ("click", click)):
        app.router.add_post(f"/t/v1/{kind}", endpoint(kind, handle))
        app.router.add_route("OPTIONS", f"/t/v1/{kind}", preflight)
    app.router.add_get("/demo/{name}", sample)
    openapi.add_paths(app, PUBLIC_PATHS, schemas=SCHEMAS)


def add_admin_routes(app: web.Application, service: TrackingService) -> None:
    """Pools, numbers and sessions for operators, under /api/v1 (behind the admin token)."""

    def error(status: int, message: str) -> web.Response:
        return web.json_response({"error": message}, status=status)

    async def list_pools(_request: web.Request) -> web.Response:
        return web.json_response({"pools": await service.pools_status()})

    async def get_pool(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not POOL_RE.match(name):
            return error(400, "pool: expected a pool name")
        status = await service.pool_status(name)
        return web.json_response(status) if status else error(404, f"no pool {name}")

    async def number_history(request: web.Request) -> web.Response:
        number = request.match_info["number"]
        if not NUMBER_PATH_RE.match(number):
            return error(400, "number: expected digits with an optional leading +")
        history = await service.store.run(service.tracking.number_history, number.lstrip("+"))
        return web.json_response({"number": number.lstrip("+"), "history": history})

    async def get_session(request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        if not SESSION_RE.match(session_id):
            return error(400, "session id: vs_ and 16 hex digits")
        session = await service.store.run(service.tracking.session, session_id)
        return web.json_response(session) if session else error(404, f"no session {session_id}")

    app.router.add_get("/api/v1/pools", list_pools)
    app.router.add_get("/api/v1/pools/{name}", get_pool)
    app.router.add_get("/api/v1/numbers/{number}/history", number_history)
    async def release_session(request: web.Request) -> web.Response:
        session_id = request.match_info["session_id"]
        if not SESSION_RE.match(session_id):
            return error(400, "session id: vs_ and 16 hex digits")
        freed = await service.store.run(service.tracking.release_session, session_id, utcnow())
        return web.json_response({"session": session_id, "released": freed})

    app.router.add_get("/api/v1/sessions/{session_id}", get_session)
    app.router.add_delete("/api/v1/sessions/{session_id}/lease", release_session)
    openapi.add_paths(app, ADMIN_PATHS)


# --- the OpenAPI description of these routes ------------------------------------------------------------------


_S = {"type": "string"}
_S_NULL = {"type": "string", "nullable": True}
_TEXT = {"text/plain": {"schema": {"$ref": "#/components/schemas/SnippetRequest"}}}
SCHEMAS: dict[str, Any] = {
    "SnippetRequest": {"type": "object", "required": ["pool", "key"], "properties": {
        "pool": {"type": "string", "pattern": POOL_RE.pattern},
        "key": {"type": "string", "pattern": KEY_RE.pattern}, "token": {"type": "string", "pattern": TOKEN_RE.pattern},
        "page": {"type": "string", "maxLength": 2048}, "referrer": {"type": "string", "maxLength": 2048},
        "title": {"type": "string", "maxLength": 300}, "ga_client_id": {"type": "string", "pattern": GA_RE.pattern},
        "params": {"type": "object", "properties": {k: {"type": "string", "maxLength": 200} for k in VISIT_FIELDS},
                   "additionalProperties": False},
        "device": {"type": "object", "properties": {"ua": {"type": "string", "maxLength": 400},
                                                    "width": {"type": "integer"}, "height": {"type": "integer"},
                                                    "touch": {"type": "boolean"}}},
        "vars": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 200}, "maxProperties": 20},
        "vars_mode": {"type": "string", "enum": ["replace", "add", "overwrite"]},
        "element": {"type": "string", "maxLength": 200}}},
    "Lease": {"type": "object", "required": ["token", "number", "display", "tel", "extension", "ttl", "renew_every",
                                             "overflow"], "properties": {
        "token": _S, "number": _S_NULL, "display": _S_NULL, "tel": _S_NULL, "extension": _S_NULL,
        "ttl": {"type": "integer"}, "renew_every": {"type": "integer"}, "overflow": {"type": "boolean"}}},
}
_SNIPPET_ERRORS = {"400": _err("invalid body; the message names the field"),
                   "403": _err("unknown pool, wrong site key, or an origin the pool does not allow"),
                   "429": _err("too many requests from this address (see Retry-After)")}


def _snippet_operation(kind: str, summary: str, ok: dict[str, Any]) -> dict[str, Any]:
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SnippetRequest"}},
                                          **_TEXT}}
    return {"post": {"operationId": f"snippet{kind.title()}", "tags": ["web snippet"], "security": [],
                     "summary": summary, "requestBody": body, "responses": {**ok, **_SNIPPET_ERRORS}},
            "options": {"operationId": f"snippet{kind.title()}Preflight", "tags": ["web snippet"], "security": [],
                        "summary": "CORS preflight", "responses": {"204": {"description": "CORS headers for allowed origins"}}}}


PUBLIC_PATHS: dict[str, Any] = {
    "/t.js": {"get": {"operationId": "snippet", "tags": ["web snippet"], "security": [],
                      "summary": "The dynamic number insertion snippet (docs/attribution.md)",
                      "responses": {"200": {"description": "JavaScript",
                                            "content": {"application/javascript": {"schema": _S}}}}}},
    "/t/v1/sessions": _snippet_operation("sessions", "Start or resume a visitor session and lease a number",
                                         {"200": _json({"$ref": "#/components/schemas/Lease"}, "the lease")}),
    "/t/v1/pageview": _snippet_operation("pageview", "Renew the lease on a page view (unknown token: new session)",
                                         {"200": _json({"$ref": "#/components/schemas/Lease"}, "the lease")}),
    "/t/v1/click": _snippet_operation("click", "Report a click on a call element", {"204": {"description": "noted"}}),
    "/demo/{name}": {"get": {"operationId": "samplePage", "tags": ["web snippet"], "security": [],
                             "summary": "Sample landing pages with the snippet filled in for a configured pool",
                             "parameters": [{"name": "name", "in": "path", "required": True, "schema": _S},
                                            {"name": "pool", "in": "query", "required": False, "schema": _S}],
                             "responses": {"200": {"description": "HTML", "content": {"text/html": {"schema": _S}}},
                                           "404": _err("no such page, or no pool of its kind")}}},
}
_AUTH = {"401": _err("missing or invalid bearer token")}
_OBJ = {"type": "object"}
ADMIN_PATHS: dict[str, Any] = {
    "/api/v1/pools": {"get": {"operationId": "listPools", "tags": ["pools"], "summary": "Pools and their usage",
                              "responses": {"200": _json({"type": "object", "required": ["pools"], "properties": {
                                  "pools": {"type": "array", "items": _OBJ}}}, "pools"), **_AUTH}}},
    "/api/v1/pools/{name}": {"get": {
        "operationId": "getPool", "tags": ["pools"], "summary": "One pool: states, alerts and every number",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": _S}],
        "responses": {"200": _json(_OBJ, "the pool"), "400": _err("not a pool name"), "404": _err("no such pool"),
                      **_AUTH}}},
    "/api/v1/numbers/{number}/history": {"get": {
        "operationId": "numberHistory", "tags": ["pools"], "summary": "A number's state changes, newest first",
        "parameters": [{"name": "number", "in": "path", "required": True, "schema": _S}],
        "responses": {"200": _json({"type": "object", "required": ["number", "history"], "properties": {
            "number": _S, "history": {"type": "array", "items": _OBJ}}}, "the history"),
            "400": _err("not a number"), **_AUTH}}},
    "/api/v1/sessions/{session_id}/lease": {"delete": {
        "operationId": "releaseLease", "tags": ["pools"],
        "summary": "End a visitor's lease now (the number cools down, the extension is free)",
        "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": _S}],
        "responses": {"200": _json({"type": "object", "required": ["session", "released"], "properties": {
            "session": _S, "released": {"type": "array", "items": _S}}}, "what was released"),
            "400": _err("not a session id"), **_AUTH}}},
    "/api/v1/sessions/{session_id}": {"get": {
        "operationId": "getSession", "tags": ["pools"], "summary": "A visitor session (never its token)",
        "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": _S}],
        "responses": {"200": _json(_OBJ, "the session"), "400": _err("not a session id"),
                      "404": _err("no such session"), **_AUTH}}},
}
