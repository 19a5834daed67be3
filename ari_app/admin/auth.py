"""Who may do what on the admin API, and the audit log of every change (issue 7).

Authentication (``auth_middleware``), for every path under /api/ except the few served without a token:

- the configured / generated admin token (``admin.token``, var/secrets/admin-token), compared in constant
  time: role ``admin``, actor ``config-admin``;
- or a stored token (ari_app/admin/tokens.py), found by its SHA-256.

``request["principal"]`` is then a :class:`Principal` (name, role, campaigns). Roles:

- ``admin``: everything.
- ``read_only``: GET and HEAD (403 otherwise), plus POST /api/v1/live/ticket (it changes nothing: the
  dashboard's live view needs it); not the tokens or the audit log.
- ``publisher``: GET and HEAD of the calls (list, detail, CSV) only, and only its campaigns' calls: the calls
  handlers filter with :func:`allowed_campaigns` (ari_app/admin/http.py). A route is opened to publishers
  only by adding it to ``PUBLISHER_ROUTES`` once its handler filters by the principal's campaigns; the
  dashboard figures (/api/v1/stats/*) and the conversions file mix campaigns, so they stay closed.

Audit (``audit_middleware``): every request under /api/ other than GET and HEAD is written to ``audit_log``
(when, actor, role, method, path, status, target, a redacted summary of the JSON body, remote address)
through the call store's storage thread. Secrets never reach it: values under keys that look like secrets
(password, token, secret, key, auth, ...) and anything shaped like a token are replaced by "[redacted]";
responses (which carry new passwords and tokens) are never read. Requests refused for want of a valid token
are written too, without a body and at most ``UNAUTHENTICATED_PER_MINUTE`` a minute, so nobody without a
token can fill the disk through it. ``GET /api/v1/audit`` reads it (admin only).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.openapi import json_content as _json, error_content as _err
from ari_app.admin.tokens import CONFIG_ADMIN, Principal, TokenRegistry
from storage.db import stored_time, utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from storage.async_store import AsyncCallStore

__all__ = ["Principal", "auth_middleware", "audit_middleware", "allowed_campaigns", "add_audit_routes"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

READ_METHODS = frozenset({"GET", "HEAD"})
ADMIN_ONLY_ROUTES = frozenset({"/api/v1/tokens", "/api/v1/tokens/{name}", "/api/v1/audit"})
READ_ONLY_EXTRA = frozenset({("POST", "/api/v1/live/ticket")})
PUBLISHER_ROUTES = frozenset({"/api/v1/calls", "/api/v1/calls.csv", "/api/v1/calls/{call_id}",
                              "/api/v1/calls/{call_id}/recording", "/api/v1/calls/{call_id}/voicemail"})
CONFIG_PRINCIPAL = Principal(CONFIG_ADMIN, "admin", None)
# request[PRINCIPAL_KEY]: a typed request key named "principal" (aiohttp >= 3.12 warns about plain str keys)
PRINCIPAL_KEY: Any = web.RequestKey("principal", Principal) if hasattr(web, "RequestKey") else "principal"

UNAUTHENTICATED_PER_MINUTE = 60
AUDIT_MAX_LIMIT = 1000
_SECRET_KEY_RE = re.compile(r"pass|secret|token|ticket|key|auth|digest|credential|cookie|signature|hmac|"
                            r"otp|pin$", re.IGNORECASE)
_SECRET_VALUE_RE = re.compile(r"(rpt_|lt_|Bearer\s)|^[A-Za-z0-9_-]{32,}$")  # our tokens, tickets, long random
_ACTOR_RE = re.compile(r"^[A-Za-z0-9._:-]{1,80}$")
_AFTER_RE = re.compile(r"^[0-9]{1,15}$")
REDACTED = "[redacted]"


def _unauthorised() -> web.Response:
    return web.json_response({"error": "missing or invalid bearer token"}, status=401,
                             headers={"WWW-Authenticate": 'Bearer realm="ringpool"'})


def _forbidden(message: str) -> web.Response:
    return web.json_response({"error": message}, status=403)


def _route(request: web.Request) -> str | None:
    """The matched route's path template (/api/v1/calls/{call_id}), or None when nothing matched."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def permission_error(principal: Principal, method: str, route: str | None) -> str | None:
    """Why this principal may not make this request, or None when it may."""
    if principal.role == "admin":
        return None
    if route in ADMIN_ONLY_ROUTES:
        return "only admin tokens may use this operation"
    if principal.role == "read_only":
        if method in READ_METHODS or (method, route) in READ_ONLY_EXTRA:
            return None
        return "this token is read-only: GET and HEAD only"
    if principal.role == "publisher":
        if method in READ_METHODS and route in PUBLISHER_ROUTES:
            return None
        return "a publisher token may only read its campaigns' calls (GET /api/v1/calls, /api/v1/calls.csv, " \
               "/api/v1/calls/{call_id} and its recording and voicemail)"
    return "unknown role"


def auth_middleware(config_token: str, tokens: TokenRegistry, open_paths: frozenset[str]) -> Any:
    """Authenticate everything under /api/ except ``open_paths`` (served without a token, or checking a
    ticket or token themselves), then apply the role's limits."""
    config_bytes = config_token.encode()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/") or request.path in open_paths:
            return await handler(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return _unauthorised()
        # surrogateescape: a header with bytes that are not UTF-8 is just a wrong token (it was a 500)
        given_bytes = given.strip().encode("utf-8", "surrogateescape")
        if config_bytes and hmac.compare_digest(given_bytes, config_bytes):
            principal: Principal | None = CONFIG_PRINCIPAL
        else:
            principal = await tokens.principal_for(given_bytes)
        if principal is None:
            return _unauthorised()
        request[PRINCIPAL_KEY] = principal
        denied = permission_error(principal, request.method, _route(request))
        if denied:
            return _forbidden(denied)
        return await handler(request)

    return auth


def allowed_campaigns(request: web.Request) -> tuple[str, ...] | None:
    """The campaigns whose calls this request may see: None for every call (admin, read_only)."""
    principal: Principal | None = request.get(PRINCIPAL_KEY)
    return principal.campaigns if principal is not None else None


# --- audit -----------------------------------------------------------------------------------------------------


def redact(value: Any, *, depth: int = 0) -> Any:
    """A summary of a JSON value with every secret replaced: keys that look like secrets, token-shaped text;
    strings cut at 200 characters, lists at 20 items, nesting at 5 levels."""
    if depth > 5:
        return "..."
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in list(value.items())[:50]:
            key = str(key)[:80]
            out[key] = REDACTED if _SECRET_KEY_RE.search(key) else redact(item, depth=depth + 1)
        return out
    if isinstance(value, list):
        return [redact(item, depth=depth + 1) for item in value[:20]] + (["..."] if len(value) > 20 else [])
    if isinstance(value, str):
        if _SECRET_VALUE_RE.search(value):
            return REDACTED
        return value if len(value) <= 200 else value[:200] + "..."
    return value


def _target(request: web.Request, body: Any) -> str | None:
    parts = [f"{k}={REDACTED if _SECRET_KEY_RE.search(k) else v}" for k, v in request.match_info.items()]
    if not parts and isinstance(body, dict):
        for key in ("name", "username"):
            if isinstance(body.get(key), str):
                parts.append(f"{key}={redact(body[key])}")
                break
    return ",".join(parts)[:300] or None


async def _body_summary(request: web.Request) -> tuple[Any, dict[str, Any]]:
    """(the parsed JSON body or None, what the audit row keeps of the body and query)."""
    details: dict[str, Any] = {}
    if request.query:
        details["query"] = redact(dict(request.query))
    body: Any = None
    if request.body_exists:
        try:
            raw = await request.read()  # aiohttp keeps the bytes: the handler has read them already
        except Exception:
            details["body"] = "(unreadable)"
            return None, details
        if raw:
            try:
                body = json.loads(raw)
                details["body"] = redact(body)
            except (ValueError, RecursionError):
                details["body"] = f"({len(raw)} bytes, not JSON)"
    return body, details


def insert_audit(db: "sqlite_utils.Database", row: dict[str, Any]) -> None:
    with db.conn:
        db.conn.execute("INSERT INTO audit_log (at, actor, role, method, path, status, target, details, remote) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [row["at"], row["actor"], row["role"], row["method"], row["path"], row["status"],
                         row["target"], json.dumps(row["details"]) if row["details"] else None, row["remote"]])


def list_audit(db: "sqlite_utils.Database", *, since: str | None = None, actor: str | None = None,
               after: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Entries oldest first (by id): page on with ``after`` = the last id seen."""
    where, params = [], []
    if since is not None:
        where.append("at >= ?")
        params.append(since)
    if actor is not None:
        where.append("actor = ?")
        params.append(actor)
    if after is not None:
        where.append("id > ?")
        params.append(after)
    sql = "SELECT id, at, actor, role, method, path, status, target, details, remote FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = db.conn.execute(sql + " ORDER BY id LIMIT ?", [*params, limit]).fetchall()
    return [{"id": r[0], "at": r[1], "actor": r[2], "role": r[3], "method": r[4], "path": r[5], "status": r[6],
             "target": r[7], "details": json.loads(r[8]) if r[8] else None, "remote": r[9]} for r in rows]


def audit_middleware(store: "AsyncCallStore | None") -> Any:
    """Write every request under /api/ other than GET and HEAD to the audit log (see the module's doc)."""
    budget = {"minute": 0, "used": 0, "dropped": 0}

    def unauthenticated_allowed() -> bool:
        minute = int(time.monotonic() // 60)
        if budget["minute"] != minute:
            if budget["dropped"]:
                log.warning("audit: %d unauthenticated requests were not logged", budget["dropped"])
            budget.update(minute=minute, used=0, dropped=0)
        if budget["used"] >= UNAUTHENTICATED_PER_MINUTE:
            budget["dropped"] += 1
            return False
        budget["used"] += 1
        return True

    async def record(request: web.Request, status: int) -> None:
        principal: Principal | None = request.get(PRINCIPAL_KEY)
        if principal is None and not unauthenticated_allowed():
            return
        body, details = await _body_summary(request) if principal is not None else (None, {})
        row = {"at": utcnow(), "actor": principal.name if principal else None,
               "role": principal.role if principal else None, "method": request.method[:16],
               "path": request.path[:500], "status": status, "target": _target(request, body),
               "details": details or None, "remote": request.remote}
        assert store is not None
        await store.run(insert_audit, store.db, row)

    @web.middleware
    async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if store is None or request.method in READ_METHODS or not request.path.startswith("/api/"):
            return await handler(request)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away
            raise
        finally:
            try:
                await asyncio.shield(record(request, status))
            except Exception:
                log.exception("audit: could not record %s %s", request.method, request.path)

    return audit


def add_audit_routes(app: web.Application, store: "AsyncCallStore | None") -> None:
    async def read(request: web.Request) -> web.Response:
        query = request.query
        unknown = sorted(set(query) - {"since", "actor", "limit", "after"})
        if unknown:
            return web.json_response({"error": f"unknown query parameter(s): {', '.join(unknown)[:200]}"},
                                     status=400)
        filters: dict[str, Any] = {}
        try:
            if "since" in query:
                try:
                    filters["since"] = stored_time(query["since"])
                except ValueError:
                    raise ValueError("since: expected a valid UTC time like 2026-01-31T12:00:00Z") from None
            if "actor" in query:
                if not _ACTOR_RE.match(query["actor"]):
                    raise ValueError("actor: a token name, config-admin or cli")
                filters["actor"] = query["actor"]
            if "after" in query:
                if not _AFTER_RE.match(query["after"]):
                    raise ValueError("after: an entry id (a whole number)")
                filters["after"] = int(query["after"])
            limit = 100
            if "limit" in query:
                if not re.fullmatch(r"[0-9]{1,4}", query["limit"]) or not 1 <= int(query["limit"]) <= AUDIT_MAX_LIMIT:
                    raise ValueError(f"limit: a whole number from 1 to {AUDIT_MAX_LIMIT}")
                limit = int(query["limit"])
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if store is None:
            raise web.HTTPServiceUnavailable(reason="the audit log is not available in this process")
        entries = await store.run(list_audit, store.db, limit=limit, **filters)
        return web.json_response({"entries": entries,
                                  "next_after": entries[-1]["id"] if len(entries) == limit else None})

    app.router.add_get("/api/v1/audit", read)
    openapi.add_paths(app, AUDIT_PATHS, schemas=AUDIT_SCHEMAS)


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_NS = {"type": "string", "nullable": True}
AUDIT_SCHEMAS: dict[str, Any] = {
    "AuditEntry": {"type": "object", "required": ["id", "at", "method", "path"], "properties": {
        "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
        "actor": {**_NS, "description": "the token's name, config-admin (the configured admin token), cli "
                                        "(the CLI with Ringpool stopped), or null (no valid token)"},
        "role": _NS, "method": {"type": "string"}, "path": {"type": "string"},
        "status": {"type": "integer", "nullable": True}, "target": _NS,
        "details": {"type": "object", "nullable": True, "additionalProperties": True,
                    "description": "query and JSON body, secrets replaced by \"[redacted]\""},
        "remote": _NS}},
}
AUDIT_PATHS: dict[str, Any] = {
    "/api/v1/audit": {"get": {
        "operationId": "listAudit", "tags": ["security"],
        "summary": "The audit log: every request under /api/ other than GET and HEAD, oldest first",
        "parameters": [
            _query("since", {"type": "string", "pattern": f"^{openapi.TIME_PATTERN}$"},
                   "entries at or after this UTC time"),
            _query("actor", {"type": "string", "pattern": _ACTOR_RE.pattern}, "a token name, config-admin or cli"),
            _query("after", {"type": "integer", "minimum": 0, "maximum": 999_999_999_999_999},
                   "`next_after` of the previous page: entries with a larger id"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": AUDIT_MAX_LIMIT, "default": 100},
                   "how many")],
        "responses": {"200": _json({"type": "object", "required": ["entries", "next_after"], "properties": {
            "entries": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEntry"}},
            "next_after": {"type": "integer", "nullable": True,
                           "description": "pass as `after` for the next page; null when this one was not full"}}},
            "the entries"),
            "400": _err("a query parameter is invalid or unknown; the message names it"),
            "401": _err("missing or invalid bearer token"),
            "403": _err("only admin tokens may read the audit log")}}},
}
