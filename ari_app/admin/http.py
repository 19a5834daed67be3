"""The admin HTTP API: health without auth, everything under /api/v1 behind a bearer token.

This is the web layer: it reads through the storage layer and a status callback, and the call-handling
service never imports it.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from aiohttp import web

from storage.async_store import AsyncCallStore
from storage.calls import FINAL_DISPOSITIONS, CallFilter, decode_cursor
from storage.db import format_time, parse_time

if TYPE_CHECKING:
    from ari_app.accounts import AccountManager

_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")
_NUMBER_RE = re.compile(r"^\+?[0-9]{1,20}$")
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")


@dataclass
class AdminDeps:
    store: AsyncCallStore
    token: str
    status: Callable[[], Awaitable[dict[str, Any]]]
    accounts: "AccountManager | None" = None  # test accounts, security events and bans
    metrics: Callable[[], Awaitable[str]] | None = None  # Prometheus text for /metrics


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def _errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status >= 400 and exc.content_type != "application/json":
            return _error(exc.status, exc.reason)
        raise


def _auth_middleware(token: str) -> Any:
    @web.middleware
    async def auth(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path.startswith("/api/"):
            header = request.headers.get("Authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
                return web.json_response({"error": "missing or invalid bearer token"}, status=401,
                                         headers={"WWW-Authenticate": 'Bearer realm="ringpool"'})
        return await handler(request)

    return auth


def _filter_from_query(query: Any) -> CallFilter:
    allowed = {"campaign", "number", "disposition", "test", "since", "until", "limit", "cursor"}
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
    for key in ("since", "until"):
        if key in query:
            value = query[key]
            if not _TIME_RE.fullmatch(value):
                raise ValueError(f"{key}: expected UTC time like 2026-01-31T12:00:00Z")
            try:
                moment = parse_time(value if "." in value else value[:-1] + ".000Z")
            except ValueError:
                raise ValueError(f"{key}: not a valid date and time") from None
            # stored times are compared as text, so use the exact stored form (3 fraction digits)
            setattr(f, key, format_time(moment))
    if "limit" in query:
        if not re.fullmatch(r"[0-9]{1,3}", query["limit"]) or not 1 <= int(query["limit"]) <= 500:
            raise ValueError("limit: a whole number from 1 to 500")
        f.limit = int(query["limit"])
    if "cursor" in query:
        try:
            decode_cursor(query["cursor"])
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("cursor: not a cursor returned by this API") from exc
        f.cursor = query["cursor"]
    return f


def build_admin_app(deps: AdminDeps) -> web.Application:
    app = web.Application(middlewares=[_errors, _auth_middleware(deps.token)], client_max_size=64 * 1024)

    async def healthz(_request: web.Request) -> web.Response:
        status = await deps.status()
        healthy = status.get("ari_connected") and status.get("database_ok")
        return web.json_response(status, status=200 if healthy else 503)

    async def list_calls(request: web.Request) -> web.Response:
        try:
            f = _filter_from_query(request.query)
        except ValueError as exc:
            return _error(400, str(exc))
        page = await deps.store.call("list_calls", f)
        return web.json_response({"calls": page.calls, "next_cursor": page.next_cursor})

    async def get_call(request: web.Request) -> web.Response:
        call_id = request.match_info["call_id"]
        if not _ID_RE.fullmatch(call_id):
            return _error(400, "call id: letters, digits, '.', '_' and '-' only")
        call = await deps.store.call("get_call", call_id)
        if call is None:
            return _error(404, f"no call {call_id}")
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
            data = await request.json()
        except (ValueError, UnicodeDecodeError):
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
            if not re.fullmatch(r"[A-Za-z]{1,40}", request.query["event"]):
                return _error(400, "event: a security event name such as ChallengeResponseFailed")
            filters["event"] = request.query["event"]
        if "limit" in request.query:
            value = request.query["limit"]
            if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= 1000:
                return _error(400, "limit: a whole number from 1 to 1000")
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

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/test-accounts", list_accounts)
    app.router.add_post("/api/v1/test-accounts", create_account)
    app.router.add_delete("/api/v1/test-accounts/{username}", delete_account)
    app.router.add_get("/api/v1/security/events", security_events)
    app.router.add_get("/api/v1/security/bans", list_bans)
    app.router.add_delete("/api/v1/security/bans/{address}", delete_ban)
    app.router.add_get("/api/v1/calls", list_calls)
    app.router.add_get("/api/v1/calls/{call_id}", get_call)
    return app
