"""The OpenAPI 3.0.3 document of the admin API, built in code and served at GET /api/v1/openapi.json (no token).

It has to match ari_app/admin/http.py: tests/unit/test_openapi.py fails when a route is missing here (or a
documented one is gone), and tests/unit/test_api_schemathesis.py runs schemathesis against a live server
with it. Patterns and enums below are the ones http.py validates with; change both together.

Other modules contribute their own routes' documentation with ``add_paths(app, paths, schemas)`` from the
function that registers those routes on the admin app (e.g. the tracking endpoints); GET /api/v1/openapi.json
serves ``document_for(app)``, the base document plus everything contributed.
"""

from __future__ import annotations

import json

import copy
from typing import Any

from aiohttp import web

from storage.calls import FINAL_DISPOSITIONS
from storage.db import API_TIME_RE

# --- validation shared with http.py ----------------------------------------------------------------------------
# (Python regexes for http.py; the documented patterns are the same text anchored with ^...$.)

TIME_PATTERN = API_TIME_RE.pattern
NUMBER_PATTERN = r"\+?[0-9]{1,20}"
NAME_PATTERN = r"[a-z0-9][a-z0-9_-]{0,39}"  # campaign names
ID_PATTERN = r"[A-Za-z0-9._-]{1,80}"  # call ids, usernames in paths
CURSOR_PATTERN = r"[A-Za-z0-9_-]{1,400}"  # base64url without padding, as storage.calls.encode_cursor makes
EVENT_PATTERN = r"[A-Za-z]{1,40}"
CALLS_MAX_LIMIT = 500
EVENTS_MAX_LIMIT = 1000
CSV_MAX_ROWS = 1_000_000  # one export stops there; narrow it with since/until

_S: dict[str, Any] = {"type": "string"}
_NS: dict[str, Any] = {"type": "string", "nullable": True}
_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_NTIME: dict[str, Any] = {"type": "string", "format": "date-time", "nullable": True}
_NNUM: dict[str, Any] = {"type": "number", "nullable": True}
_NINT: dict[str, Any] = {"type": "integer", "nullable": True}
_FLAG: dict[str, Any] = {"type": "integer", "enum": [0, 1]}

# The call record's fields, in the order of the CSV export's columns (GET /api/v1/calls.csv): one place for
# both. Every column of the calls table is here (tests/unit/test_openapi.py compares with the database).
CALL_FIELDS: dict[str, dict[str, Any]] = {
    "id": _S,
    "arrived_at": _TIME,
    "answered_at": _NTIME,
    "destination_answered_at": _NTIME,
    "bridged_at": _NTIME,
    "ended_at": _NTIME,
    "caller_number": _NS,
    "caller_name": _NS,
    "dialed_number": _NS,
    "campaign": _NS,
    "destination": _NS,
    "disposition": {"type": "string", "nullable": True, "enum": [*FINAL_DISPOSITIONS, None]},
    "decision": _NS,
    "decision_reasons": {"type": "array", "items": _S, "nullable": True,
                         "description": "in the CSV: the reasons joined with '; '"},
    "ring_seconds": _NNUM,
    "talk_seconds": _NNUM,
    "total_seconds": _NNUM,
    "hangup_cause": _NINT,
    "hangup_cause_text": _NS,
    "hangup_side": _NS,
    "end_observed": _NS,
    # attribution (visitor sessions, number pools)
    "spam": {"type": "integer"},
    "repeat_caller": {"type": "integer"},
    "client_id": _NINT,
    "pool": _NS,
    "number_state": _NS,
    "extension": _NS,
    "session_id": _NS,
    "source": _NS,
    "medium": _NS,
    "ad_campaign": _NS,
    "keyword": _NS,
    "landing_page": _NS,
    "referrer": _NS,
    "gclid": _NS,
    "ga_client_id": _NS,
    "attribution_method": _NS,
    "attribution_confidence": _NS,
    "attribution_details": {"nullable": True, "description": "JSON (in the CSV: as JSON text)"},
    "marketing": {"nullable": True, "description": "JSON (in the CSV: as JSON text)"},
    "converted_at": _NS,
    "conversion_name": _NS,
    "conversion_value": _NNUM,
    "conversion_currency": _NS,
    # screening
    "score1": _NINT,
    "score1_color": {"type": "string", "nullable": True, "enum": ["green", "yellow", "red", None]},
    "score2": _NINT,
    "screening": {"nullable": True, "description": "JSON: action, factors with weights, the list rule, the refusal, "
                                                   "score 2's factors (in the CSV: as JSON text)"},
    "candidate": {"type": "integer"},
    "spam_reason": _NS,
    "challenge": {"nullable": True, "description": "JSON: passed, digit_ok, presence (in the CSV: as JSON text)"},
    # detection
    "detection_path": _NS,
    "fax_detected": _FLAG,
    "modem_detected": _FLAG,
    "voice_detected": _FLAG,
    "silence_detected": _FLAG,
    "machine_dtmf": _FLAG,
    "dtmf_digits": _NS,
    "transcript": _NS,
    "keywords": _NS,
    "amd_result": _NS,
    # IVR, quality, routing, queue, recording, payouts (issue 6)
    "direction": {"type": "string", "enum": ["inbound", "click_to_call", "callback"],
                  "description": "inbound: the caller dialled a tracking number; click_to_call and callback: "
                                 "Ringpool called the visitor first, then the business"},
    "flow": _NS,
    "ivr_path": {"type": "array", "items": _S, "nullable": True, "description": "the flow's nodes, in order"},
    "ivr_answers": {"type": "object", "nullable": True,
                    "description": "what the caller answered, by variable; keys: every menu key in order"},
    "tags": {"type": "array", "items": _S, "nullable": True},
    "quality": _NINT,
    "quality_factors": {"type": "array", "nullable": True, "items": {"type": "object"},
                        "description": "factor, points, detail: every contribution to the quality score"},
    "region": _NS,
    "number_type": _NS,
    "route_strategy": _NS,
    "route_reasons": {"type": "array", "items": _S, "nullable": True},
    "bids": {"type": "array", "nullable": True, "items": {"type": "object"},
             "description": "every bid considered: buyer, amount, source, eligible, reason"},
    "buyer": _NS,
    "winning_bid": _NNUM,
    "caller_id_presented": _NS,
    "queued_at": _NTIME,
    "queue_seconds": _NNUM,
    "recording": {"type": "string", "nullable": True,
                  "description": "set when a recording was kept: GET /api/v1/calls/{id}/recording"},
    "recording_seconds": _NNUM,
    "voicemail": {"type": "string", "nullable": True,
                  "description": "set when a message was left: GET /api/v1/calls/{id}/voicemail"},
    "sale_amount": {**_NNUM, "description": "posted with POST /api/v1/calls/{id}/conversion; the payout rules' "
                                            "sale_share is taken of it"},
    "revenue": {**_NNUM, "description": "under the campaign's payout rules (null without rules); priced when the call "
                                        "ends and again when a conversion, sale amount or spam verdict is posted"},
    "payout": {**_NNUM, "description": "the publisher's payout under the same rules"},
    "margin": {**_NNUM, "description": "revenue - payout"},
    "payout_details": {"type": "object", "nullable": True, "description": "items: every payout line and why"},
    # test calls, signalling, bookkeeping
    "is_test": _FLAG,
    "test_account": _NS,
    "state": _S,
    "trunk": _NS,
    "inbound_channel": _S,
    "p_asserted_identity": _NS,
    "privacy": _NS,
    "diversion": _NS,
    "p_charge_info": _NS,
    "decision_latency_ms": _NNUM,
    "updated_at": _TIME,
}

_ACCOUNT_HEADER = {"type": "string", "pattern": r"^[\x20-\x7e]{1,256}$"}

_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error"], "properties": {"error": _S},
              "description": "Every error, whatever the status"},
    "CallRecord": {"type": "object", "required": ["id", "arrived_at", "state"],
                   "properties": {name: dict(schema) for name, schema in CALL_FIELDS.items()}},
    "CallLeg": {"type": "object", "required": ["channel_id", "call_id", "role", "created_at"], "properties": {
        "channel_id": _S, "call_id": _S, "role": _S, "destination": _NS, "dial_string": _NS, "created_at": _TIME,
        "answered_at": _NTIME, "ended_at": _NTIME, "dial_status": _NS, "hangup_cause": _NINT,
        "hangup_cause_text": _NS, "buyer": _NS}},
    "CallEvent": {"type": "object", "required": ["id", "at", "kind"], "properties": {
        "id": {"type": "integer"}, "at": _TIME, "kind": _S,
        "data": {"type": "object", "nullable": True, "additionalProperties": True}}},
    "CallDetection": {"type": "object", "required": ["leg", "source", "kind", "at"], "properties": {
        "leg": _S, "source": _S, "kind": _S, "start_s": _NNUM, "duration_s": _NNUM, "at": _TIME,
        "details": {"type": "object", "nullable": True, "additionalProperties": True}}},
    "CallDetail": {"allOf": [
        {"$ref": "#/components/schemas/CallRecord"},
        {"type": "object", "required": ["legs", "events", "detections"], "properties": {
            "legs": {"type": "array", "items": {"$ref": "#/components/schemas/CallLeg"}},
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/CallEvent"}},
            "detections": {"type": "array", "items": {"$ref": "#/components/schemas/CallDetection"}}}}]},
    "CallPage": {"type": "object", "required": ["calls", "next_cursor"], "additionalProperties": False,
                 "properties": {
                     "calls": {"type": "array", "items": {"$ref": "#/components/schemas/CallRecord"}},
                     "next_cursor": {"type": "string", "nullable": True,
                                     "description": "pass as `cursor` for the next page; null on the last"}}},
    "Health": {"type": "object", "required": ["ari_connected", "database_ok"], "properties": {
        "ari_connected": {"type": "boolean"}, "database_ok": {"type": "boolean"},
        "ari_reconnects": {"type": "integer"}, "ari_last_error": _NS, "active_calls": {"type": "integer"}}},
    "TestAccount": {"type": "object", "required": ["username", "caller_number", "caller_name", "headers", "source"],
                    "properties": {
                        "username": _S, "caller_number": _S, "caller_name": _S,
                        "headers": {"type": "object", "additionalProperties": _S},
                        "source": {"type": "string", "enum": ["config", "api"]},
                        "created_at": _NTIME}},
    "NewTestAccount": {
        "type": "object", "required": ["username", "caller_number"], "additionalProperties": False,
        "properties": {
            "username": {"type": "string", "pattern": r"^[a-z][a-z0-9_.-]{1,31}$",
                         "description": "not reserved (anonymous, ..., names starting with trunk-, dest-, ringpool-)"},
            "password": {"type": "string", "pattern": r"^[!-~]{12,128}$",
                         "description": "leave it out: a strong one is generated and returned once"},
            "caller_number": {"type": "string", "pattern": r"^(\+?[0-9]{1,20}|anonymous|restricted|unavailable)$"},
            "caller_name": {"type": "string", "pattern": r'^[^\x00-\x1f\x7f";\\<>]{0,64}$'},
            "headers": {"type": "object", "additionalProperties": False, "properties": {
                "P-Asserted-Identity": _ACCOUNT_HEADER, "Privacy": _ACCOUNT_HEADER,
                "Diversion": _ACCOUNT_HEADER, "P-Charge-Info": _ACCOUNT_HEADER}}}},
    "CreatedTestAccount": {"allOf": [
        {"$ref": "#/components/schemas/TestAccount"},
        {"type": "object", "required": ["password", "applied", "note"], "properties": {
            "password": _S, "applied": {"type": "boolean", "description": "written to Asterisk and reloaded"},
            "note": _S}}]},
    "SecurityEvent": {"type": "object", "required": ["id", "at", "event"], "properties": {
        "id": {"type": "integer"}, "at": _S, "event": _S, "address": _NS, "account": _NS, "service": _NS,
        "details": {"type": "object", "nullable": True, "additionalProperties": True}}},
    "Ban": {"type": "object", "required": ["address", "banned_at", "until", "failures"], "properties": {
        "address": _S, "banned_at": _S, "until": _S, "failures": {"type": "integer"}, "reason": _NS}},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response object with a JSON body: every module documenting its routes uses this."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_content(description: str) -> dict[str, Any]:
    """A response object for an ``{"error": ...}`` answer."""
    return json_content(_ref("Error"), description)


def error_response(status: int, message: str, **headers: str) -> web.Response:
    """The JSON error answer every handler gives: ``{"error": message}`` with a 4xx/5xx status."""
    return web.json_response({"error": message}, status=status, headers=headers or None)


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is ``{}``); ValueError with a message for the 400 otherwise.
    Any declared charset is ignored: json.loads reads UTF-8/16/32 itself."""
    try:
        body = json.loads(await request.read() or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValueError("body: not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("body: expected a JSON object")
    return body


_json, _err = json_content, error_content


_AUTH_ERRORS = {"401": _err("missing or invalid bearer token")}
_NO_ACCOUNTS = {"503": _err("test accounts are not available in this process")}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _path(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema, "description": description}


_CALL_FILTERS = [
    _query("campaign", {"type": "string", "pattern": f"^{NAME_PATTERN}$"}, "campaign name"),
    _query("number", {"type": "string", "pattern": f"^{NUMBER_PATTERN}$"},
           "dialed (tracking) number or caller number; a leading + is ignored"),
    _query("disposition", {"type": "string", "enum": list(FINAL_DISPOSITIONS)}, "final disposition"),
    _query("test", {"type": "boolean"}, "true: only test calls from softphone accounts; false: only real calls"),
    _query("spam", {"type": "boolean"}, "true: only spam; false: leave spam out (reports)"),
    _query("source", {"type": "string", "minLength": 1, "maxLength": 200}, "traffic source of the attributed visit"),
    _query("keyword", {"type": "string", "minLength": 1, "maxLength": 200}, "search keyword of the attributed visit"),
    _query("since", {"type": "string", "pattern": f"^{TIME_PATTERN}$"},
           "arrived at or after this UTC time (e.g. 2026-01-31T12:00:00Z)"),
    _query("until", {"type": "string", "pattern": f"^{TIME_PATTERN}$"}, "arrived before this UTC time"),
    *[_query(name, {"type": "integer", "minimum": 0, "maximum": 100}, text) for name, text in (
        ("min_quality", "quality score at least this (0-100)"), ("max_quality", "quality score at most this"),
        ("min_score", "screening's spam score 1 at least this (0-100)"), ("max_score", "spam score 1 at most this"))],
]
SCORE_FILTERS = {"min_quality": ("quality", ">="), "max_quality": ("quality", "<="),
                 "min_score": ("score1", ">="), "max_score": ("score1", "<=")}
_PAGINATION = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": CALLS_MAX_LIMIT, "default": 50}, "page size"),
    _query("cursor", {"type": "string", "pattern": f"^{CURSOR_PATTERN}$"},
           "`next_cursor` of the previous page (newest first)"),
]
_BAD_QUERY = {"400": _err("a query parameter is invalid or unknown; the message names it")}

_PATHS: dict[str, Any] = {
    "/healthz": {"get": {
        "operationId": "health", "tags": ["operations"], "security": [],
        "summary": "Health: ARI connection and database (no token)",
        "responses": {"200": _json(_ref("Health"), "healthy"),
                      "503": _json(_ref("Health"), "ARI disconnected or database unusable")}}},
    "/metrics": {"get": {
        "operationId": "metrics", "tags": ["operations"], "security": [],
        "summary": "Prometheus metrics (no token: bind the admin server to a trusted address)",
        "responses": {"200": {"description": "Prometheus text format 0.0.4",
                              "content": {"text/plain": {"schema": _S}}},
                      "404": _err("metrics are not enabled in this process")}}},
    "/api/v1/openapi.json": {"get": {
        "operationId": "openapi", "tags": ["operations"], "security": [],
        "summary": "This document (no token, so tools can fetch it)",
        "responses": {"200": _json({"type": "object"}, "OpenAPI 3.0.3 document")}}},
    "/api/v1/calls": {"get": {
        "operationId": "listCalls", "tags": ["calls"], "summary": "Calls, newest first, a page at a time",
        "parameters": _CALL_FILTERS + _PAGINATION,
        "responses": {"200": _json(_ref("CallPage"), "one page of calls"), **_BAD_QUERY, **_AUTH_ERRORS}}},
    "/api/v1/calls.csv": {"get": {
        "operationId": "exportCalls", "tags": ["calls"],
        "summary": "Every matching call as CSV, newest first (same filters as /api/v1/calls, no pagination)",
        "description": ("Columns: the call record's fields in the order of the CallRecord schema. Cells that "
                        "start with = + - @ tab or CR (other than plain numbers) get a leading apostrophe so "
                        f"spreadsheets never run them. Streamed; stops after {CSV_MAX_ROWS} rows."),
        "parameters": _CALL_FILTERS,
        "responses": {"200": {"description": "CSV with a header row (RFC 4180, UTF-8)",
                              "headers": {"Content-Disposition": {"schema": _S, "description": "attachment"}},
                              "content": {"text/csv": {"schema": _S}}},
                      **_BAD_QUERY, **_AUTH_ERRORS}}},
    "/api/v1/calls/{call_id}": {"get": {
        "operationId": "getCall", "tags": ["calls"], "summary": "One call with its legs, events and detections",
        "parameters": [_path("call_id", {"type": "string", "pattern": f"^{ID_PATTERN}$"}, "call id")],
        "responses": {"200": _json(_ref("CallDetail"), "the call"),
                      "400": _err("not a call id"), "404": _err("no such call"), **_AUTH_ERRORS}}},
    "/api/v1/test-accounts": {
        "get": {"operationId": "listTestAccounts", "tags": ["test accounts"],
                "summary": "Softphone test accounts (configured and created through the API)",
                "responses": {"200": _json({"type": "object", "required": ["accounts"], "properties": {
                    "accounts": {"type": "array", "items": _ref("TestAccount")}}}, "the accounts"),
                    **_AUTH_ERRORS, **_NO_ACCOUNTS}},
        "post": {"operationId": "createTestAccount", "tags": ["test accounts"],
                 "summary": "Create a test account; the password is in this response only",
                 "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("NewTestAccount")}}},
                 "responses": {"201": _json(_ref("CreatedTestAccount"), "created"),
                               "400": _err("invalid body; the message starts with the field"),
                               "409": _err("the username exists or is defined in the configuration"),
                               "413": _err("body over 64 KiB"), **_AUTH_ERRORS, **_NO_ACCOUNTS}}},
    "/api/v1/test-accounts/{username}": {"delete": {
        "operationId": "deleteTestAccount", "tags": ["test accounts"],
        "summary": "Remove an account created through the API or the CLI",
        "parameters": [_path("username", {"type": "string", "pattern": f"^{ID_PATTERN}$"}, "user name")],
        "responses": {"200": _json({"type": "object", "required": ["removed", "applied"], "properties": {
            "removed": _S, "applied": {"type": "boolean"}}}, "removed"),
            "400": _err("not a user name"), "404": _err("no such account"),
            "409": _err("defined in the configuration, or a destination uses it"),
            **_AUTH_ERRORS, **_NO_ACCOUNTS}}},
    "/api/v1/security/events": {"get": {
        "operationId": "listSecurityEvents", "tags": ["security"],
        "summary": "Failed SIP logins, bans and unbans, newest first",
        "parameters": [
            _query("address", {"type": "string", "maxLength": 64}, "an IPv4 or IPv6 address"),
            _query("event", {"type": "string", "pattern": f"^{EVENT_PATTERN}$"},
                   "event name, e.g. ChallengeResponseFailed, Banned"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": EVENTS_MAX_LIMIT, "default": 100},
                   "how many")],
        "responses": {"200": _json({"type": "object", "required": ["events"], "properties": {
            "events": {"type": "array", "items": _ref("SecurityEvent")}}}, "the events"),
            **_BAD_QUERY, **_AUTH_ERRORS, **_NO_ACCOUNTS}}},
    "/api/v1/security/bans": {"get": {
        "operationId": "listBans", "tags": ["security"], "summary": "Addresses banned for failed logins",
        "responses": {"200": _json({"type": "object", "required": ["bans"], "properties": {
            "bans": {"type": "array", "items": _ref("Ban")}}}, "the bans"), **_AUTH_ERRORS, **_NO_ACCOUNTS}}},
    "/api/v1/security/bans/{address}": {"delete": {
        "operationId": "deleteBan", "tags": ["security"], "summary": "Lift a ban",
        "parameters": [_path("address", {"type": "string", "maxLength": 64}, "the banned IPv4 or IPv6 address")],
        "responses": {"200": _json({"type": "object", "required": ["unbanned", "applied"], "properties": {
            "unbanned": _S, "applied": {"type": "boolean"}}}, "lifted"),
            "400": _err("not an IP address"), "404": _err("not banned"), **_AUTH_ERRORS, **_NO_ACCOUNTS}}},
}

_DESCRIPTION = """\
Ringpool's admin API. Everything under /api/v1 needs `Authorization: Bearer <token>` (the admin token,
generated on first run into var/secrets/admin-token), except this document, GET /api/v1/openapi.json, which
tools fetch without one. /healthz and /metrics take no token either. Errors are always JSON `{"error": "..."}`.
"""


def build_document(extra_paths: dict[str, Any] | None = None,
                   extra_schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole document; ``extra_paths`` / ``extra_schemas`` come from other modules' routes. A path or schema
    name given twice is an error (ValueError), so nothing is silently replaced."""
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Ringpool admin API", "version": "1", "description": _DESCRIPTION},
        "tags": [{"name": "calls"}, {"name": "test accounts"}, {"name": "security"}, {"name": "operations"}],
        "security": [{"bearerAuth": []}],
        "paths": copy.deepcopy(_PATHS),
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                          "description": "the admin token"}},
                       "schemas": copy.deepcopy(_SCHEMAS)},
    }
    for section, extra in ((doc["paths"], extra_paths), (doc["components"]["schemas"], extra_schemas)):
        for key, value in (extra or {}).items():
            if key in section:
                raise ValueError(f"OpenAPI: {key} is documented twice")
            section[key] = copy.deepcopy(value)
    _document_roles(doc["paths"])
    return doc


ROLE_REFUSAL = ("the token's role does not allow this: read_only tokens may only read, publisher tokens only "
                "read their campaigns' calls")


def _document_roles(paths: dict[str, Any]) -> None:
    """Every operation that needs a token can answer 403 to a token whose role does not allow it (auth.py):
    said once here rather than in each module's paths."""
    for operations in paths.values():
        for method, operation in operations.items():
            if method in ("get", "put", "post", "delete", "patch") and operation.get("security") != []:
                operation["responses"].setdefault("403", error_content(ROLE_REFUSAL))


# --- contributions from other modules' routes --------------------------------------------------------------

_EXTRA_PATHS = web.AppKey("ringpool_openapi_paths", dict)
_EXTRA_SCHEMAS = web.AppKey("ringpool_openapi_schemas", dict)


def add_paths(app: web.Application, paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> None:
    """Document routes another module registers on the admin app (call it where the routes are added).

    ``paths`` is an OpenAPI paths object (``{"/t/v1/...": {"get": {...}}}``); operations that need no token set
    ``"security": []``. ``schemas`` go to components/schemas; refer to them as ``#/components/schemas/Name``
    (the shared ones, e.g. ``Error``, are there too).
    """
    for key, section in ((_EXTRA_PATHS, paths), (_EXTRA_SCHEMAS, schemas or {})):
        target = app.setdefault(key, {})  # type: ignore[arg-type]
        for name, value in section.items():
            if name in target:
                raise ValueError(f"OpenAPI: {name} is documented twice")
            target[name] = value


def document_for(app: web.Application) -> dict[str, Any]:
    return build_document(app.get(_EXTRA_PATHS), app.get(_EXTRA_SCHEMAS))
