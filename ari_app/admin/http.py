"""The admin HTTP API: health without auth, everything under /api/v1 behind a bearer token.

This is the web layer: it reads through the storage layer and a status callback, and the call-handling
service never imports it.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.openapi import error_response as _error
from ari_app.admin.auth import add_audit_routes, allowed_campaigns, audit_middleware, auth_middleware
from ari_app.admin.tokens import TokenRegistry
from ari_app.admin.tokens import add_routes as add_token_routes
from storage.async_store import AsyncCallStore
from storage.calls import FINAL_DISPOSITIONS, CallFilter, decode_cursor
from storage.db import stored_time

from ari_app.admin.conversions import add_routes as add_conversion_routes
from ari_app.admin.config_http import add_routes as add_config_routes
from ari_app.admin.recordings import add_routes as add_recording_routes
from ari_app.routing.http import add_routes as add_click_to_call_routes
from ari_app.screening.http import add_routes as add_screening_routes
from ari_app.admin.dashboard import add_routes as add_dashboard_routes
from ari_app.admin.reports import add_routes as add_report_routes
from ari_app.tracking.http import add_admin_routes as add_tracking_admin_routes
from ari_app.tracking.http import add_public_routes as add_tracking_public_routes

if TYPE_CHECKING:
    from ari_app.admin.live import LiveFeed
    from ari_app.screening.service import ScreeningService
    from ari_app.tracking.service import TrackingService
    from ari_app.accounts import AccountManager
    from ari_app.config import Settings
    from ari_app.config_reload import ConfigReloader

log = logging.getLogger(__name__)

# The patterns are the ones the OpenAPI document publishes (ari_app/admin/openapi.py).
_NUMBER_RE = re.compile(openapi.NUMBER_PATTERN)
_NAME_RE = re.compile(openapi.NAME_PATTERN)
_ID_RE = re.compile(openapi.ID_PATTERN)
_CURSOR_RE = re.compile(openapi.CURSOR_PATTERN)
_EVENT_RE = re.compile(openapi.EVENT_PATTERN)
_PUBLIC_API_PATHS = frozenset({"/api/v1/openapi.json"})  # under /api/ but served without a token
_SELF_AUTH_PATHS = frozenset({"/api/v1/live"})  # check a ticket or the token themselves (ari_app/admin/dashboard.py)

CSV_COLUMNS: tuple[str, ...] = tuple(openapi.CALL_FIELDS)  # GET /api/v1/calls.csv, in this order
CSV_PAGE_SIZE = 500  # rows read per store call while streaming an export
_CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER_RE = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


@dataclass
class AdminDeps:
    store: AsyncCallStore
    token: str
    status: Callable[[], Awaitable[dict[str, Any]]]
    accounts: "AccountManager | None" = None  # test accounts, security events and bans
    metrics: Callable[[], Awaitable[str]] | None = None  # Prometheus text for /metrics
    tracking: "TrackingService | None" = None  # pools: the web snippet's public endpoints and the pool views
    screening: "ScreeningService | None" = None  # block and allow lists, false-positive clearing
    live: "LiveFeed | None" = None  # call milestones for the dashboard's live stream (ari_app/admin/live.py)
    settings: "Settings | None" = None  # payout rules (conversions) and the state folder (recordings)
    click_to_call: "Callable[..., str] | None" = None  # places click-to-call calls (the call manager)
    reloader: "ConfigReloader | None" = None  # configuration changes through the API, applied live

    def current_settings(self) -> "Settings | None":
        """The settings the service runs with: given, or else the tracking or screening service's (the runner
        builds all of them from the one Settings), so recordings and payouts work either way."""
        for source in (self, self.tracking, self.screening):
            settings = getattr(source, "settings", None)
            if settings is not None:
                return settings
        return None


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _error(exc.status, exc.reason)
        raise


def _filter_from_query(query: Any, *, paginated: bool = True) -> CallFilter:
    """The call filters of /api/v1/calls (and, without limit and cursor, of /api/v1/calls.csv)."""
    allowed = {"campaign", "number", "disposition", "test", "spam", "source", "keyword", "since", "until",
               *openapi.SCORE_FILTERS}
    if paginated:
        allowed |= {"limit", "cursor"}
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ValueError(f"unknown query parameter(s): {', '.join(unknown)}")
    f = CallFilter()
    if "campaign" in query:
        if not _NAME_RE.fullmatch(query["campaign"]):
            raise ValueError("campaign: expected a campaign name")
        f.campaign = query["campaign"]
    if "number" in query:
        if not _NUMBER_RE.fullmatch(query["number"]):
            raise ValueError("number: expected digits with an optional leading +")
        f.number = query["number"].lstrip("+")
    if "disposition" in query:
        if query["disposition"] not in FINAL_DISPOSITIONS:
            raise ValueError(f"disposition: one of {', '.join(FINAL_DISPOSITIONS)}")
        f.disposition = query["disposition"]
    if "test" in query:
        if query["test"] not in ("true", "false"):
            raise ValueError("test: true (only test calls from softphone accounts) or false (only real calls)")
        f.test = query["test"] == "true"
    if "spam" in query:
        if query["spam"] not in ("true", "false"):
            raise ValueError("spam: true (only spam) or false (without spam)")
        f.spam = query["spam"] == "true"
    for key in ("source", "keyword"):
        if key in query:
            if not 1 <= len(query[key]) <= 200 or any(ord(ch) < 32 for ch in query[key]):
                raise ValueError(f"{key}: text of 1-200 characters")
            setattr(f, key, query[key])
    for key in ("since", "until"):
        if key in query:
            try:
                setattr(f, key, stored_time(query[key]))
            except ValueError:
                raise ValueError(f"{key}: expected a valid UTC time like 2026-01-31T12:00:00Z") from None
    scores = []
    for key, (column, op) in openapi.SCORE_FILTERS.items():
        if key in query:
            if not re.fullmatch(r"[0-9]{1,3}", query[key]) or int(query[key]) > 100:
                raise ValueError(f"{key}: a whole number from 0 to 100")
            scores.append((column, op, int(query[key])))
    f.scores = tuple(scores)
    if "limit" in query:
        if not re.fullmatch(r"[0-9]{1,3}", query["limit"]) or not 1 <= int(query["limit"]) <= openapi.CALLS_MAX_LIMIT:
            raise ValueError(f"limit: a whole number from 1 to {openapi.CALLS_MAX_LIMIT}")
        f.limit = int(query["limit"])
    if "cursor" in query:
        try:
            if not _CURSOR_RE.fullmatch(query["cursor"]):
                raise ValueError("not base64url")
            decode_cursor(query["cursor"])
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("cursor: not a cursor returned by this API") from exc
        f.cursor = query["cursor"]
    return f


def _csv_cell(value: Any) -> Any:
    """A CSV cell: None is empty, lists are joined with '; ', and text a spreadsheet would take for a formula
    (starting with = + - @ tab or CR) gets a leading apostrophe; numbers, and text that is just a number such
    as +15551234567, stay as they are."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, (list, tuple)):
        value = "; ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = json.dumps(value, ensure_ascii=False)
    text = str(value)
    if text.startswith(_CSV_FORMULA_START) and not _PLAIN_NUMBER_RE.fullmatch(text):
        return "'" + text
    return text


def _csv_text(rows: Iterable[Iterable[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def build_admin_app(deps: AdminDeps) -> web.Application:
    tokens = TokenRegistry(deps.store)  # the admin token or a stored one, with a role (ari_app/admin/auth.py)
    app = web.Application(middlewares=[_errors, audit_middleware(deps.store),
                                       auth_middleware(deps.token, tokens, _PUBLIC_API_PATHS | _SELF_AUTH_PATHS)],
                          client_max_size=64 * 1024)

    async def healthz(_request: web.Request) -> web.Response:
        status = await deps.status()
        healthy = status.get("ari_connected") and status.get("database_ok")
        return web.json_response(status, status=200 if healthy else 503)

    async def list_calls(request: web.Request) -> web.Response:
        try:
            f = _filter_from_query(request.query)
        except ValueError as exc:
            return _error(400, str(exc))
        f.campaigns = allowed_campaigns(request)  # a publisher token: its campaigns' calls only
        page = await deps.store.call("list_calls", f)
        return web.json_response({"calls": page.calls, "next_cursor": page.next_cursor})

    async def export_calls(request: web.Request) -> web.StreamResponse:
        """Every matching call as CSV, streamed a page at a time so memory stays flat whatever the size."""
        try:
            f = _filter_from_query(request.query, paginated=False)
        except ValueError as exc:
            return _error(400, str(exc))
        f.limit = CSV_PAGE_SIZE
        f.campaigns = allowed_campaigns(request)  # a publisher token: its campaigns' calls only
        page = await deps.store.call("list_calls", f)  # before the status is sent: a failure is still a 500
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        resp = web.StreamResponse(headers={
            "Content-Disposition": f'attachment; filename="ringpool-calls-{stamp}.csv"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        resp.content_type = "text/csv"
        resp.charset = "utf-8"
        await resp.prepare(request)
        await resp.write(_csv_text([CSV_COLUMNS]))
        written = 0
        while True:
            rows = page.calls[: openapi.CSV_MAX_ROWS - written]
            await resp.write(_csv_text([_csv_cell(call.get(name)) for name in CSV_COLUMNS] for call in rows))
            written += len(rows)
            if page.next_cursor is None:
                break
            if written >= openapi.CSV_MAX_ROWS:
                log.warning("CSV export stopped at %d rows; narrow it with since/until", written)
                break
            f.cursor = page.next_cursor
            page = await deps.store.call("list_calls", f)
        await resp.write_eof()
        return resp

    async def openapi_document(request: web.Request) -> web.Response:
        return web.json_response(openapi.document_for(request.app))

    async def get_call(request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        if not _ID_RE.fullmatch(call_id):
            return _error(400, "call id: letters, digits, '.', '_' and '-' only")
        call = await deps.store.call("get_call", call_id)
        campaigns = allowed_campaigns(request)
        if call is None or (campaigns is not None and call.get("campaign") not in campaigns):
            return _error(404, f"no call {call_id}")  # the same answer: a publisher learns nothing of others' calls
        return web.json_response(call)

    def accounts_or_error() -> "AccountManager":
        if deps.accounts is None:
            raise web.HTTPServiceUnavailable(reason="test accounts are not available in this process")
        return deps.accounts

    async def list_accounts(_request: web.Request) -> web.Response:
        accounts = await accounts_or_error().list_accounts()
        return web.json_response({"accounts": [a.public() for a in accounts]})

    async def create_account(request: web.Request) -> web.Response:
        from ari_app.accounts import AccountError

        manager = accounts_or_error()
        try:
            # the bytes, not request.json(): a declared charset aiohttp does not know was a 500 (LookupError);
            # json.loads reads UTF-8/16/32 itself. RecursionError: '[[[[...' nested too deep.
            data = json.loads(await request.read())
        except (ValueError, RecursionError):
            return _error(400, "body: expected a JSON object")
        try:
            spec, password, applied = await manager.create(data)
        except AccountError as exc:
            return _error(exc.status, str(exc))
        body = spec.public() | {
            "password": password, "applied": applied,
            "note": "the password is shown only now; Ringpool keeps only its digest",
        }
        return web.json_response(body, status=201)

    async def delete_account(request: web.Request) -> web.Response:
        from ari_app.accounts import AccountError

        manager = accounts_or_error()
        username = request.match_info["username"]
        if not _ID_RE.fullmatch(username):
            return _error(400, "username: letters, digits, '.', '_' and '-' only")
        try:
            applied = await manager.remove(username)
        except AccountError as exc:
            return _error(exc.status, str(exc))
        except KeyError:
            return _error(404, f"no test account {username}")
        return web.json_response({"removed": username, "applied": applied})

    async def security_events(request: web.Request) -> web.Response:
        manager = accounts_or_error()
        unknown = sorted(set(request.query) - {"address", "event", "limit"})
        if unknown:
            return _error(400, f"unknown query parameter(s): {', '.join(unknown)}")
        filters: dict[str, Any] = {}
        if "address" in request.query:
            try:
                filters["address"] = str(ipaddress.ip_address(request.query["address"]))
            except ValueError:
                return _error(400, "address: expected an IP address")
        if "event" in request.query:
            if not _EVENT_RE.fullmatch(request.query["event"]):
                return _error(400, "event: a security event name such as ChallengeResponseFailed")
            filters["event"] = request.query["event"]
        if "limit" in request.query:
            value = request.query["limit"]
            if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= openapi.EVENTS_MAX_LIMIT:
                return _error(400, f"limit: a whole number from 1 to {openapi.EVENTS_MAX_LIMIT}")
            filters["limit"] = int(value)
        return web.json_response({"events": await manager.events(**filters)})

    async def list_bans(_request: web.Request) -> web.Response:
        return web.json_response({"bans": await accounts_or_error().bans()})

    async def delete_ban(request: web.Request) -> web.Response:
        manager = accounts_or_error()
        try:
            address = str(ipaddress.ip_address(request.match_info["address"]))
        except ValueError:
            return _error(400, "address: expected an IP address")
        try:
            applied = await manager.unban(address, reason="lifted through the API")
        except KeyError:
            return _error(404, f"{address} is not banned")
        return web.json_response({"unbanned": address, "applied": applied})

    async def metrics(_request: web.Request) -> web.Response:
        # Like /healthz, outside /api: scrapers carry no token; bind the admin server to a trusted address.
        if deps.metrics is None:
            return _error(404, "metrics are not enabled")
        return web.Response(text=await deps.metrics(), content_type="text/plain", charset="utf-8",
                            headers={"X-Prometheus-Format": "0.0.4"})

    if deps.tracking is not None:
        add_tracking_public_routes(app, deps.tracking)
        add_tracking_admin_routes(app, deps.tracking)
    settings = deps.current_settings()
    add_conversion_routes(app, deps.store, settings)  # sale amounts recompute the payout with its rules
    if settings is not None:
        add_recording_routes(app, deps.store, settings.state_dir)  # /api/v1/calls/{call_id}/recording, /voicemail
    if deps.screening is not None:
        add_screening_routes(app, deps.screening)
    if deps.click_to_call is not None:
        add_click_to_call_routes(app, deps.click_to_call)
    if deps.reloader is not None:
        add_config_routes(app, deps.reloader)
    add_dashboard_routes(app, deps)  # /, /ui/*, /api/v1/stats/*, /api/v1/live (ari_app/admin/dashboard.py)
    add_report_routes(app, deps)  # /api/v1/reports/calls, /api/v1/reports/pools (ari_app/admin/reports.py)
    add_token_routes(app, tokens)  # /api/v1/tokens (ari_app/admin/tokens.py)
    add_audit_routes(app, deps.store)  # /api/v1/audit (ari_app/admin/auth.py)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/test-accounts", list_accounts)
    app.router.add_post("/api/v1/test-accounts", create_account)
    app.router.add_delete("/api/v1/test-accounts/{username}", delete_account)
    app.router.add_get("/api/v1/security/events", security_events)
    app.router.add_get("/api/v1/security/bans", list_bans)
    app.router.add_delete("/api/v1/security/bans/{address}", delete_ban)
    app.router.add_get("/api/v1/openapi.json", openapi_document)
    app.router.add_get("/api/v1/calls", list_calls)
    app.router.add_get("/api/v1/calls.csv", export_calls)
    app.router.add_get("/api/v1/calls/{call_id}", get_call)
    # Other modules register their routes here, one line each, and document them with openapi.add_paths(app, ...)
    # (tests/unit/test_openapi.py fails for an undocumented route).
    return app
