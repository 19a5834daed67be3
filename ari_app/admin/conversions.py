"""Facts that arrive after a call, through the API: a conversion (a sale, an appointment, with an optional sale
amount) or a spam verdict, and the offline-conversion file ad platforms import. Each change goes to the webhooks
with the call's data (the outbox queues it in the same transaction).

Both change what an ended call is worth, so its revenue, payout and margin are worked out again by
ari_app/routing/payout.py (the one place that prices a call) in the same storage hop, before the change is
marked: the webhook then carries the new figures. A call still in progress is priced when it ends.
"""

from __future__ import annotations

import io
import math
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.openapi import json_content as _json, error_response as _error
from ari_app.outbox.export import conversions_for_export, write_csv
from ari_app.routing.payout import payout_fields
from storage.async_store import AsyncCallStore
from storage.call_history import settle
from storage.db import stored_time, utcnow

if TYPE_CHECKING:
    import sqlite_utils

    from ari_app.config import Settings
    from storage.calls import CallStore

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
CONVERSION_KEYS = {"name", "value", "currency", "at", "sale_amount"}
MAX_AMOUNT = 1e12


def _amount(value: Any) -> bool:
    """A JSON number from 0 to MAX_AMOUNT (true and false are not numbers here)."""
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
            and 0 <= value <= MAX_AMOUNT)


def _conversion(body: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(body) - CONVERSION_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s): {', '.join(unknown)[:200]}")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not 1 <= len(name) <= 100):
        raise ValueError("name: text of 1-100 characters (the ad platform's conversion action)")
    value = body.get("value")
    if value is not None and not _amount(value):
        raise ValueError("value: a number from 0 (the conversion's value for ad platforms)")
    sale_amount = body.get("sale_amount")
    if sale_amount is not None and not _amount(sale_amount):
        raise ValueError("sale_amount: a number from 0 (the sale the payout's sale_share is taken of)")
    currency = body.get("currency")
    if currency is not None and (not isinstance(currency, str) or not CURRENCY_RE.match(currency)):
        raise ValueError("currency: an ISO 4217 code such as USD")
    at = body.get("at")
    if at is not None:
        try:
            at = stored_time(at) if isinstance(at, str) else stored_time("")
        except ValueError:
            raise ValueError("at: a valid UTC time like 2026-01-31T12:00:00.000Z") from None
    conversion = {"name": name, "value": value, "currency": currency, "at": at}
    return conversion | ({"sale_amount": sale_amount} if sale_amount is not None else {})


# --- on the storage thread -------------------------------------------------------------------------------------


def _changes(conversion: dict[str, Any] | None, spam: bool | None, at: str) -> dict[str, Any]:
    """The columns mark() is about to write that the payout reads, so the payout is priced as they will be."""
    changes: dict[str, Any] = {}
    if conversion is not None:
        changes["converted_at"] = conversion.get("at") or at
        if "sale_amount" in conversion:
            changes["sale_amount"] = conversion["sale_amount"]
    if spam is not None:
        changes["spam"] = int(spam)
    return changes


def repriced(db: "sqlite_utils.Database", row: dict[str, Any], changes: dict[str, Any],
             settings: "Settings | None") -> dict[str, Any]:
    """The columns to store: the sale amount, and for an ended call under payout rules its new revenue, payout
    and margin (a call in progress is priced when it ends, from what is stored by then)."""
    stored = {"sale_amount": changes["sale_amount"]} if "sale_amount" in changes else {}
    if settings is None or not row.get("ended_at"):
        return stored
    return stored | payout_fields(db, row | changes, settings)


def mark_and_reprice(calls: "CallStore", settings: "Settings | None", call_id: str, *,
                     conversion: dict[str, Any] | None = None, spam: bool | None = None) -> dict[str, Any] | None:
    """Price the call as the conversion or spam verdict leaves it, then mark it: the updated call, or None
    when there is no such call. One trip to the storage thread, so nothing runs in between."""
    at = utcnow()
    changes = _changes(conversion, spam, at)

    def compute(row: dict[str, Any]) -> dict[str, Any]:
        return repriced(calls.db, row, changes, settings)

    settle(calls.db, call_id, compute)  # its own transaction: mark() opens another
    return calls.mark(call_id, conversion=conversion, spam=spam, at=at)


def add_routes(app: web.Application, store: AsyncCallStore, settings: "Settings | None" = None) -> None:
    """``settings``: the campaigns' payout rules; without them sale amounts are stored and nothing is repriced."""
    id_re = re.compile(f"^{openapi.ID_PATTERN}$")

    async def mark(request: web.Request, **what: Any) -> web.Response:
        call_id = request.match_info["call_id"]
        if not id_re.match(call_id):
            return _error(400, "call id: letters, digits, '.', '_' and '-' only")
        call = await store.run(mark_and_reprice, store.store, settings, call_id, **what)
        return web.json_response(call) if call else _error(404, f"no call {call_id}")

    async def convert(request: web.Request) -> web.Response:
        try:
            conversion = _conversion(await openapi.read_json_object(request))
        except ValueError as exc:
            return _error(400, str(exc))
        return await mark(request, conversion=conversion)

    async def spam(request: web.Request) -> web.Response:
        try:
            body = await openapi.read_json_object(request)
            if set(body) != {"spam"} or not isinstance(body["spam"], bool):
                raise ValueError('body: {"spam": true} or {"spam": false}')
        except ValueError as exc:
            return _error(400, str(exc))
        return await mark(request, spam=body["spam"])

    async def export(request: web.Request) -> web.Response:
        """Google Ads offline conversions: calls with a gclid converted in [since, until)."""
        query = request.query
        unknown = sorted(set(query) - {"since", "until", "campaign"})
        if unknown:
            return _error(400, f"unknown query parameter(s): {', '.join(unknown)[:200]}")
        for key in ("since", "until"):
            if key not in query or not re.fullmatch(openapi.TIME_PATTERN, query[key]):
                return _error(400, f"{key}: required, UTC time like 2026-01-31T12:00:00Z")
        campaign = query.get("campaign")
        if campaign is not None and not re.fullmatch(openapi.NAME_PATTERN, campaign):
            return _error(400, "campaign: expected a campaign name")
        try:
            since, until = stored_time(query["since"]), stored_time(query["until"])
        except ValueError:
            return _error(400, "since/until: not a valid date and time")
        rows = await store.run(conversions_for_export, store.db, since, until, campaign)
        out = io.StringIO()
        write_csv(rows, out)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8", headers={
            "Content-Disposition": f'attachment; filename="ringpool-conversions-{stamp}.csv"',
            "Cache-Control": "no-store"})

    app.router.add_post("/api/v1/calls/{call_id}/conversion", convert)
    app.router.add_post("/api/v1/calls/{call_id}/spam", spam)
    app.router.add_get("/api/v1/conversions.csv", export)
    openapi.add_paths(app, PATHS)


_ERR = {"$ref": "#/components/schemas/Error"}
_CALL = {"$ref": "#/components/schemas/CallRecord"}
_CALL_ID = {"name": "call_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": f"^{openapi.ID_PATTERN}$"}}
_COMMON = {"400": _json(_ERR, "invalid body; the message names the field"), "404": _json(_ERR, "no such call"),
           "401": _json(_ERR, "missing or invalid bearer token"),
           "403": _json(_ERR, "this token may not change calls (read-only and publisher tokens)")}
PATHS: dict[str, Any] = {
    "/api/v1/calls/{call_id}/conversion": {"post": {
        "operationId": "convertCall", "tags": ["calls"],
        "summary": "Record a conversion (sale, appointment) on a call; sent to webhooks as call.converted",
        "description": ("An ended call whose campaign has payout rules is priced again (revenue, payout, margin, "
                        "payout_details in the answer and the webhook): `converted` bonuses now apply, and "
                        "`sale_amount` is what the rules' sale_share is taken of. A call still in progress is "
                        "priced when it ends. Posting again replaces the conversion; a sale_amount left out "
                        "keeps the one stored."),
        "parameters": [_CALL_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 100},
                "value": {"type": "number", "minimum": 0, "maximum": MAX_AMOUNT,
                          "description": "the conversion's value, sent to ad platforms"},
                "currency": {"type": "string", "pattern": CURRENCY_RE.pattern},
                "at": {"type": "string", "pattern": f"^{openapi.TIME_PATTERN}$"},
                "sale_amount": {"type": "number", "minimum": 0, "maximum": MAX_AMOUNT,
                                "description": "the sale, stored in the call's sale_amount; the campaign's "
                                               "payout sale_share is a share of it"}}}}}},
        "responses": {"200": _json(_CALL, "the call, with its new revenue, payout and margin"), **_COMMON}}},
    "/api/v1/calls/{call_id}/spam": {"post": {
        "operationId": "markSpam", "tags": ["calls"],
        "summary": "Mark a call as spam (call.spam to webhooks) or clear the mark",
        "description": ("An ended call under payout rules is priced again: spam earns no revenue and pays "
                        "nothing; clearing the mark prices it as usual."),
        "parameters": [_CALL_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["spam"], "additionalProperties": False,
            "properties": {"spam": {"type": "boolean"}}}}}},
        "responses": {"200": _json(_CALL, "the call"), **_COMMON}}},
    "/api/v1/conversions.csv": {"get": {
        "operationId": "exportConversions", "tags": ["calls"],
        "summary": "Offline conversions for Google Ads: gclid, conversion name, time with zone, value, currency",
        "parameters": [
            {"name": "since", "in": "query", "required": True,
             "schema": {"type": "string", "pattern": f"^{openapi.TIME_PATTERN}$"}, "description": "converted at or after"},
            {"name": "until", "in": "query", "required": True,
             "schema": {"type": "string", "pattern": f"^{openapi.TIME_PATTERN}$"}, "description": "converted before"},
            {"name": "campaign", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": f"^{openapi.NAME_PATTERN}$"}}],
        "responses": {"200": {"description": "CSV in Google's offline conversion template",
                              "content": {"text/csv": {"schema": {"type": "string"}}}},
                      "400": _json(_ERR, "a query parameter is missing or invalid"),
                      "401": _json(_ERR, "missing or invalid bearer token"),
           "403": _json(_ERR, "this token may not change calls (read-only and publisher tokens)")}}},
}
