"""The live dashboard (issue 7): the page at /, its static files, the figures it charts and its live stream.

- ``GET /`` and ``GET /ui/{name}``: plain HTML, CSS and JavaScript from ari_app/admin/static (no build step, no
  CDN), with a strict Content-Security-Policy (everything from this server, nothing inline). The page itself
  needs no token; everything it shows comes from the API with the token the operator signs in with.
- ``GET /api/v1/stats/today`` and ``GET /api/v1/stats/hourly``: storage/stats.py.
- ``POST /api/v1/live/ticket`` (bearer token) and ``GET /api/v1/live?ticket=...``: the call milestones as
  server-sent events. EventSource cannot send an Authorization header, so the page trades its token for a
  single-use ticket valid 60 s; other clients (curl) may send the bearer header to /api/v1/live instead. The
  stream sends ``retry:``, a ``hello`` event, then ``call`` events (``{"type": "call.started", "seq": n,
  "call": {...}}``), ``resync`` when this client fell too far behind (reload your view), and a comment line
  every 15 s so proxies and the browser know it is alive. At most ``LiveFeed.max_subscribers`` streams.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.openapi import json_content as _json, error_content as _err, error_response as _error
from ari_app.admin.live import TicketBook, TooManySubscribers
from storage import stats
from storage.db import format_time, stored_time

if TYPE_CHECKING:
    from ari_app.admin.http import AdminDeps

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
CONTENT_TYPES = {".html": "text/html", ".css": "text/css", ".js": "application/javascript",
                 ".svg": "image/svg+xml"}
STATIC_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}\.(css|js|svg)$")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

HEARTBEAT_SECONDS = 15.0  # a comment line on an idle stream
RETRY_MS = 3000  # the browser's reconnect delay (the page takes a new ticket itself)
DISCONNECT_POLL = 1.0  # how often an idle stream checks whether its client went away
_TICKET_RE = re.compile(r"^lt_[A-Za-z0-9_-]{20,80}$")
_TIME_RE = re.compile(openapi.TIME_PATTERN)
_HOURS_RE = re.compile(r"^[0-9]{1,3}$")


def _static_files() -> dict[str, tuple[bytes, str]]:
    files = {}
    for path in sorted(STATIC.iterdir()) if STATIC.is_dir() else []:
        if path.is_file() and path.suffix in CONTENT_TYPES:
            files[path.name] = (path.read_bytes(), CONTENT_TYPES[path.suffix])
    return files


def _test_filter(query: Any) -> bool | None:
    if "test" not in query:
        return None
    if query["test"] not in ("true", "false"):
        raise ValueError("test: true (only test calls) or false (only real calls)")
    return query["test"] == "true"


def _check_params(query: Any, allowed: set[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ValueError(f"unknown query parameter(s): {', '.join(unknown)[:200]}")


def add_routes(app: web.Application, deps: "AdminDeps") -> None:
    files = _static_files()
    tickets = TicketBook()

    # --- the page -------------------------------------------------------------------------------------------

    async def index(_request: web.Request) -> web.Response:
        if "index.html" not in files:
            return _error(404, "the dashboard is not installed (ari_app/admin/static is missing)")
        body, content_type = files["index.html"]
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS)

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not STATIC_NAME_RE.match(name) or name not in files:
            return _error(404, "no such file")
        body, content_type = files[name]
        return web.Response(body=body, content_type=content_type, charset="utf-8", headers=PAGE_HEADERS)

    # --- figures ---------------------------------------------------------------------------------------------

    async def stats_today(request: web.Request) -> web.Response:
        query = request.query
        try:
            _check_params(query, {"since", "test"})
            test = _test_filter(query)
            if "since" in query:
                try:
                    since = stored_time(query["since"])
                except ValueError:
                    raise ValueError("since: expected a valid UTC time like 2026-01-31T05:00:00Z") from None
            else:
                since = format_time(datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0))
        except ValueError as exc:
            return _error(400, str(exc))
        return web.json_response(await deps.store.run(stats.day_summary, deps.store.db, since, None, test))

    async def stats_hourly(request: web.Request) -> web.Response:
        query = request.query
        try:
            _check_params(query, {"hours", "test"})
            test = _test_filter(query)
            hours = 24
            if "hours" in query:
                if not _HOURS_RE.match(query["hours"]) or not 1 <= int(query["hours"]) <= stats.MAX_HOURS:
                    raise ValueError(f"hours: a whole number from 1 to {stats.MAX_HOURS}")
                hours = int(query["hours"])
        except ValueError as exc:
            return _error(400, str(exc))
        return web.json_response(await deps.store.run(stats.hourly, deps.store.db, hours, None, test))

    # --- the live stream -------------------------------------------------------------------------------------

    async def live_ticket(_request: web.Request) -> web.Response:
        if deps.live is None:
            return _error(404, "the live feed is not enabled in this process")
        return web.json_response({"ticket": tickets.issue(), "expires_in": int(tickets.ttl)}, status=201,
                                 headers={"Cache-Control": "no-store"})

    def authorised(request: web.Request) -> bool:
        """The bearer token (curl) or a ticket (EventSource). The auth middleware lets /api/v1/live through."""
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), deps.token.encode())
        ticket = request.query.get("ticket", "")
        return bool(_TICKET_RE.match(ticket)) and tickets.redeem(ticket)

    async def live(request: web.Request) -> web.StreamResponse:
        feed = deps.live
        if feed is None:
            return _error(404, "the live feed is not enabled in this process")
        if not authorised(request):
            return _error(401, "missing or invalid ticket (POST /api/v1/live/ticket) or bearer token",
                          **{"WWW-Authenticate": 'Bearer realm="ringpool"'})
        try:
            _check_params(request.query, {"ticket"})
            sub = feed.subscribe()
        except ValueError as exc:
            return _error(400, str(exc))
        except TooManySubscribers as exc:
            return _error(503, f"too many live streams ({exc})", **{"Retry-After": "10"})
        try:
            resp = web.StreamResponse(headers={
                "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
                "X-Accel-Buffering": "no", "X-Content-Type-Options": "nosniff"})
            await resp.prepare(request)
            await resp.write(_sse("hello", {"type": "hello", "heartbeat": HEARTBEAT_SECONDS}, retry=RETRY_MS))
            next_beat = time.monotonic() + HEARTBEAT_SECONDS
            while True:
                wait = max(0.0, min(DISCONNECT_POLL, next_beat - time.monotonic()))
                event = await sub.get(timeout=wait)
                if request.transport is None or request.transport.is_closing():
                    break  # the client went away
                if event is not None:
                    name = "resync" if event.get("type") == "resync" else "call"
                    await resp.write(_sse(name, event, event_id=event.get("seq")))
                    next_beat = time.monotonic() + HEARTBEAT_SECONDS
                elif sub.closed:
                    await resp.write(_sse("bye", {"type": "bye"}))
                    break  # the server is stopping
                elif time.monotonic() >= next_beat:
                    await resp.write(b": keep-alive\n\n")
                    next_beat = time.monotonic() + HEARTBEAT_SECONDS
        except ConnectionError:
            pass  # the client went away mid-write
        finally:
            feed.unsubscribe(sub)
        return resp

    async def close_feed(_app: web.Application) -> None:
        if deps.live is not None:
            deps.live.close()  # open streams end now, not after the server's shutdown timeout

    app.on_shutdown.append(close_feed)
    app.router.add_get("/", index)
    app.router.add_get("/ui/{name}", static)
    app.router.add_get("/api/v1/stats/today", stats_today)
    app.router.add_get("/api/v1/stats/hourly", stats_hourly)
    app.router.add_post("/api/v1/live/ticket", live_ticket)
    app.router.add_get("/api/v1/live", live, allow_head=False)
    openapi.add_paths(app, PATHS, schemas=SCHEMAS)


def _sse(name: str, data: dict[str, Any], *, event_id: Any = None, retry: int | None = None) -> bytes:
    lines = []
    if retry is not None:
        lines.append(f"retry: {retry}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines += [f"event: {name}", "data: " + json.dumps(data, separators=(",", ":"), default=str)]
    return ("\n".join(lines) + "\n\n").encode()


# --- the OpenAPI description of these routes ------------------------------------------------------------------


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_INT = {"type": "integer"}
_NS = {"type": "string", "nullable": True}
_AUTH = {"401": _err("missing or invalid bearer token")}
_BAD = {"400": _err("a query parameter is invalid or unknown; the message names it")}
_TEST = _query("test", {"type": "boolean"}, "true: only test calls from softphone accounts; false: only real calls")
_PAGE = {"description": "the dashboard's files", "headers": {
    "Content-Security-Policy": {"schema": {"type": "string"}, "description": "default-src 'self' and stricter"}}}

SCHEMAS: dict[str, Any] = {
    "StatsToday": {"type": "object", "required": ["since", "calls", "answered", "active", "spam_blocked",
                                                  "by_disposition", "by_campaign"], "properties": {
        "since": {"type": "string", "format": "date-time"}, "until": _NS,
        "calls": _INT, "answered": {"type": "integer", "description": "bridged to the business"},
        "active": {"type": "integer", "description": "not ended yet"},
        "spam_blocked": {"type": "integer", "description": "rejected before answer or marked as spam"},
        "rejected": _INT, "marked_spam": _INT,
        "by_disposition": {"type": "object", "additionalProperties": _INT},
        "by_campaign": {"type": "array", "items": {"type": "object", "required": ["campaign", "calls"], "properties": {
            "campaign": _NS, "calls": _INT, "answered": _INT, "spam_blocked": _INT}}}}},
    "StatsHourly": {"type": "object", "required": ["hours", "series", "totals"], "properties": {
        "hours": {"type": "array", "items": {"type": "string", "format": "date-time"},
                  "description": "each bucket's start (UTC), oldest first; the last is the current hour"},
        "series": {"type": "array", "items": {"type": "object", "required": ["campaign", "counts", "total"],
                                              "properties": {"campaign": _NS,
                                                             "counts": {"type": "array", "items": _INT},
                                                             "total": _INT}}},
        "totals": {"type": "array", "items": _INT}}},
    "LiveTicket": {"type": "object", "required": ["ticket", "expires_in"], "properties": {
        "ticket": {"type": "string"}, "expires_in": {"type": "integer", "description": "seconds"}}},
}

PATHS: dict[str, Any] = {
    "/": {"get": {
        "operationId": "dashboard", "tags": ["dashboard"], "security": [],
        "summary": "The live dashboard (sign in there with the admin token; the page itself holds no data)",
        "responses": {"200": {**_PAGE, "content": {"text/html": {"schema": {"type": "string"}}}},
                      "404": _err("the dashboard's files are not installed")}}},
    "/ui/{name}": {"get": {
        "operationId": "dashboardFile", "tags": ["dashboard"], "security": [],
        "summary": "The dashboard's CSS, JavaScript and icon",
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {**_PAGE, "content": {t: {"schema": {"type": "string"}} for t in (
            "text/css", "application/javascript", "image/svg+xml")}},
            "404": _err("no such file")}}},
    "/api/v1/stats/today": {"get": {
        "operationId": "statsToday", "tags": ["dashboard"],
        "summary": "Calls, answered, active and spam blocked since the start of the day, by campaign",
        "parameters": [
            _query("since", {"type": "string", "pattern": f"^{openapi.TIME_PATTERN}$"},
                   "the start of the day as a UTC time (the dashboard sends the browser's local midnight); "
                   "default 00:00 UTC today"), _TEST],
        "responses": {"200": _json({"$ref": "#/components/schemas/StatsToday"}, "the day's figures"),
                      **_BAD, **_AUTH}}},
    "/api/v1/stats/hourly": {"get": {
        "operationId": "statsHourly", "tags": ["dashboard"],
        "summary": "Calls per UTC hour by campaign, the current hour last",
        "parameters": [_query("hours", {"type": "integer", "minimum": 1, "maximum": stats.MAX_HOURS, "default": 24},
                              "how many hours"), _TEST],
        "responses": {"200": _json({"$ref": "#/components/schemas/StatsHourly"}, "the buckets"), **_BAD, **_AUTH}}},
    "/api/v1/live/ticket": {"post": {
        "operationId": "liveTicket", "tags": ["dashboard"],
        "summary": "A single-use ticket for GET /api/v1/live, valid 60 s (EventSource cannot send a token)",
        "responses": {"201": _json({"$ref": "#/components/schemas/LiveTicket"}, "the ticket"), **_AUTH,
                      "404": _err("the live feed is not enabled in this process")}}},
    "/api/v1/live": {"get": {
        "operationId": "liveEvents", "tags": ["dashboard"],
        "summary": "Call milestones as server-sent events, as they happen",
        "description": ("Authenticate with `?ticket=` (from POST /api/v1/live/ticket; single use) or the bearer "
                        "token. Events: `hello` first (with `retry:`), then `call` with `{\"type\": "
                        "\"call.started|call.answered|call.completed|call.converted|call.spam\", \"seq\": n, "
                        "\"call\": {...}}` (a summary of the call record), `resync` when this client fell "
                        "too far behind and should reload, `bye` when the server stops; a comment line every "
                        f"{HEARTBEAT_SECONDS:.0f} s on an idle stream."),
        "parameters": [_query("ticket", {"type": "string", "pattern": _TICKET_RE.pattern},
                              "a ticket from POST /api/v1/live/ticket, instead of the bearer token")],
        "responses": {"200": {"description": "an endless text/event-stream",
                              "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                      **_BAD, "401": _err("missing or invalid ticket or bearer token"),
                      "404": _err("the live feed is not enabled in this process"),
                      "503": _err("too many streams are open (see Retry-After)")}}},
}
