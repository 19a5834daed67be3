"""Block and allow lists and false-positive clearing, under /api/v1/screening (behind the admin token)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.openapi import json_content as _json, error_response as _error
from ari_app.screening.service import ScreeningService
from ari_app.screening.store import KINDS, RANGE_WIDTH
from storage.db import stored_time, utcnow

DIGITS_RE = re.compile(r"^[0-9]{1,15}$")
NAME_RE = re.compile(openapi.NAME_PATTERN)
RULE_KEYS = {"list", "kind", "value", "value_end", "campaign", "expires_at", "reason"}
MAX_PAGE = 500


class BadRequest(ValueError):
    pass


def _rule(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("body: expected a JSON object")
    unknown = sorted(set(body) - RULE_KEYS)
    if unknown:
        raise BadRequest(f"unknown key(s): {', '.join(unknown)[:200]}")
    list_, kind = body.get("list", "block"), body.get("kind", "number")
    if list_ not in ("block", "allow"):
        raise BadRequest("list: block or allow")
    if kind not in KINDS:
        raise BadRequest(f"kind: one of {', '.join(KINDS)}")
    value = body.get("value", "")
    if not isinstance(value, str):
        raise BadRequest("value: expected text")
    value_end = body.get("value_end")
    if kind in ("number", "prefix", "charge", "range"):
        value = value.lstrip("+")
        if not DIGITS_RE.match(value):
            raise BadRequest("value: digits (up to 15, a leading + is ignored)")
    if kind == "range":
        if not isinstance(value_end, str) or not DIGITS_RE.match(value_end.lstrip("+")):
            raise BadRequest("value_end: the last number of the range, digits")
        value_end = value_end.lstrip("+")
        if len(value_end) != len(value) or value_end < value:
            raise BadRequest("value_end: same length as value, and not below it")
    elif value_end is not None:
        raise BadRequest("value_end: only for kind range")
    if kind == "name" and not 1 <= len(value) <= 64:
        raise BadRequest("value: a caller-name pattern of 1-64 characters (* and ? are wildcards)")
    if kind == "anonymous":
        value = ""
    campaign = body.get("campaign")
    if campaign is not None and (not isinstance(campaign, str) or not NAME_RE.fullmatch(campaign)):
        raise BadRequest("campaign: a campaign name (leave out for every campaign)")
    expires_at = body.get("expires_at")
    if expires_at is not None:
        try:
            expires_at = stored_time(expires_at) if isinstance(expires_at, str) else stored_time("")
        except ValueError:
            raise BadRequest("expires_at: UTC time like 2026-12-31T00:00:00Z (leave out: permanent)") from None
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 200):
        raise BadRequest("reason: text of at most 200 characters")
    return {"list_": list_, "kind": kind, "value": value, "value_end": value_end, "campaign": campaign,
            "expires_at": expires_at, "reason": reason}



def add_routes(app: web.Application, service: ScreeningService) -> None:
    async def list_rules(request: web.Request) -> web.Response:
        query = request.query
        unknown = sorted(set(query) - {"list", "kind", "campaign", "value", "after", "limit"})
        if unknown:
            return _error(400, f"unknown query parameter(s): {', '.join(unknown)[:200]}")
        if query.get("list") not in (None, "block", "allow"):
            return _error(400, "list: block or allow")
        if query.get("kind") not in (None, *KINDS):
            return _error(400, f"kind: one of {', '.join(KINDS)}")
        if "campaign" in query and not NAME_RE.fullmatch(query["campaign"]):
            return _error(400, "campaign: a campaign name")
        if "value" in query and len(query["value"]) > 64:
            return _error(400, "value: at most 64 characters")
        try:
            after = int(query.get("after", "0"))
            limit = int(query.get("limit", "100"))
            if after < 0 or not 1 <= limit <= MAX_PAGE or after > 2**62:
                raise ValueError
        except ValueError:
            return _error(400, f"after: a rule id; limit: 1 to {MAX_PAGE}")
        value = query.get("value")
        if value is not None and query.get("kind") == "range":
            value = value.lstrip("+").rjust(RANGE_WIDTH, "0")
        rules = await service.store.run(service.screens.rules, list_=query.get("list"), kind=query.get("kind"),
                                        campaign=query.get("campaign"), value=value, after_id=after, limit=limit)
        return web.json_response({"rules": rules, "next_after": rules[-1]["id"] if len(rules) == limit else None})

    async def add_rule(request: web.Request) -> web.Response:
        try:
            rule = _rule(await openapi.read_json_object(request))
        except ValueError as exc:
            return _error(400, str(exc))
        if rule["campaign"] is not None and rule["campaign"] not in service.settings.campaigns:
            return _error(400, f"campaign: no campaign named {rule['campaign']}")
        stored = await service.store.run(service.screens.add_rule, rule.pop("list_"), rule.pop("kind"),
                                         rule.pop("value"), **rule, source="api", now=utcnow())
        return web.json_response(stored, status=201)

    async def delete_rule(request: web.Request) -> web.Response:
        raw = request.match_info["rule_id"]
        if not re.fullmatch(r"[0-9]{1,18}", raw):
            return _error(400, "rule id: a whole number")
        removed = await service.store.run(service.screens.delete_rule, int(raw))
        return web.json_response({"deleted": int(raw)}) if removed else _error(404, f"no rule {raw}")

    async def clear(request: web.Request) -> web.Response:
        try:
            body = await openapi.read_json_object(request)
            if set(body) - {"number", "allow"}:
                raise BadRequest('body: {"number": "15551234567", "allow": true}')
            number = body.get("number")
            if not isinstance(number, str) or not DIGITS_RE.match(number.lstrip("+")):
                raise BadRequest("number: the caller's number, digits")
            allow = body.get("allow", False)
            if not isinstance(allow, bool):
                raise BadRequest("allow: true or false")
        except ValueError as exc:
            return _error(400, str(exc))
        result = await service.store.run(service.screens.clear, number.lstrip("+"), allow=allow, now=utcnow())
        return web.json_response({"number": number.lstrip("+"), **result})

    app.router.add_get("/api/v1/screening/rules", list_rules)
    app.router.add_post("/api/v1/screening/rules", add_rule)
    app.router.add_delete("/api/v1/screening/rules/{rule_id}", delete_rule)
    app.router.add_post("/api/v1/screening/clear", clear)
    openapi.add_paths(app, PATHS, schemas=SCHEMAS)


_ERR = {"$ref": "#/components/schemas/Error"}
_AUTH = {"401": _json(_ERR, "missing or invalid bearer token")}
_S = {"type": "string"}
_S_NULL = {"type": "string", "nullable": True}
SCHEMAS = {
    "ScreenRule": {"type": "object", "required": ["id", "list", "kind", "value"], "properties": {
        "id": {"type": "integer"}, "list": {"type": "string", "enum": ["block", "allow"]},
        "kind": {"type": "string", "enum": list(KINDS)}, "value": _S, "value_end": _S_NULL, "campaign": _S_NULL,
        "expires_at": _S_NULL, "reason": _S_NULL, "source": _S, "created_at": _S, "hits": {"type": "integer"},
        "last_hit_at": _S_NULL}},
    "NewScreenRule": {"type": "object", "additionalProperties": False, "properties": {
        "list": {"type": "string", "enum": ["block", "allow"], "default": "block"},
        "kind": {"type": "string", "enum": list(KINDS), "default": "number"},
        "value": {"type": "string", "description": "digits for number, prefix, charge and range; a pattern for name"},
        "value_end": {"type": "string", "description": "range only: the last number"},
        "campaign": {"type": "string", "pattern": f"^{openapi.NAME_PATTERN}$"},
        "expires_at": {"type": "string", "pattern": f"^{openapi.TIME_PATTERN}$"},
        "reason": {"type": "string", "maxLength": 200}}},
}
PATHS = {
    "/api/v1/screening/rules": {
        "get": {"operationId": "listScreenRules", "tags": ["screening"], "summary": "Block and allow rules, by id",
                "parameters": [{"name": n, "in": "query", "required": False, "schema": schema} for n, schema in (
                    ("list", {"type": "string", "enum": ["block", "allow"]}),
                    ("kind", {"type": "string", "enum": list(KINDS)}),
                    ("campaign", {"type": "string", "pattern": f"^{openapi.NAME_PATTERN}$"}),
                    ("value", {"type": "string", "maxLength": 64}),
                    ("after", {"type": "integer", "minimum": 0}),
                    ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}))],
                "responses": {"200": _json({"type": "object", "required": ["rules"], "properties": {
                    "rules": {"type": "array", "items": {"$ref": "#/components/schemas/ScreenRule"}},
                    "next_after": {"type": "integer", "nullable": True}}}, "a page of rules"),
                    "400": _json(_ERR, "a query parameter is invalid"), **_AUTH}},
        "post": {"operationId": "addScreenRule", "tags": ["screening"],
                 "summary": "Block or allow numbers, prefixes, ranges, caller names, anonymous callers or charge "
                            "numbers, everywhere or in one campaign, permanently or until a time",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/NewScreenRule"}}}},
                 "responses": {"201": _json({"$ref": "#/components/schemas/ScreenRule"}, "the rule"),
                               "400": _json(_ERR, "invalid rule; the message names the field"), **_AUTH}}},
    "/api/v1/screening/rules/{rule_id}": {"delete": {
        "operationId": "deleteScreenRule", "tags": ["screening"], "summary": "Remove a rule",
        "parameters": [{"name": "rule_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": _json({"type": "object", "properties": {"deleted": {"type": "integer"}}}, "removed"),
                      "400": _json(_ERR, "not a rule id"), "404": _json(_ERR, "no such rule"), **_AUTH}}},
    "/api/v1/screening/clear": {"post": {
        "operationId": "clearFalsePositive", "tags": ["screening"],
        "summary": "Clear a false positive: remove the caller's block rules and quarantine hits, unmark their "
                   "spam calls, and optionally allow the number",
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["number"], "additionalProperties": False,
            "properties": {"number": {"type": "string"}, "allow": {"type": "boolean"}}}}}},
        "responses": {"200": _json({"type": "object"}, "what was cleared"),
                      "400": _json(_ERR, "invalid body"), **_AUTH}}},
}
