"""Reports (issue 7): the admin API over storage/reports.py.

- ``GET /api/v1/reports/calls?group=campaign,day&since=...&until=...``: calls grouped by campaign, publisher,
  source, medium, keyword, ad_campaign, day and/or hour (``tz``: an IANA zone for days and hours, default UTC),
  with calls, answered, bridged, spam blocked, average talk time, conversions, revenue, payout and margin (from
  the campaigns' payout rules, ari_app/routing/payout.py); JSON, or CSV with ``format=csv``.
- ``GET /api/v1/reports/pools?since=...&until=...``: each pool's size, numbers leased now and utilisation (from the
  tracking service), and over the period its calls, calls to its overflow number and the overflow rate.

Validation is strict: an unknown, repeated or invalid parameter is a 400 whose message starts with its name.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ari_app.admin import openapi
from ari_app.admin.openapi import json_content as _json, error_content as _err, error_response as _error
from ari_app.admin.auth import allowed_campaigns
from storage import reports
from storage.db import stored_time

if TYPE_CHECKING:
    from ari_app.admin.http import AdminDeps

CALL_PARAMS = {"group", "since", "until", "tz", "campaign", "include_spam", "include_test", "format"}
POOL_PARAMS = {"since", "until", "include_spam", "include_test"}
_NAME_RE = re.compile(openapi.NAME_PATTERN)
_GROUP_ITEM = "|".join(reports.GROUPS)
GROUP_PATTERN = f"^({_GROUP_ITEM})(,({_GROUP_ITEM})){{0,{len(reports.GROUPS) - 1}}}$"
TZ_PATTERN = reports.TZ_RE.pattern


def _one(query: Any, name: str) -> str | None:
    values = query.getall(name, [])
    if len(values) > 1:
        raise ValueError(f"{name}: given more than once")
    return values[0] if values else None


def _flag(query: Any, name: str) -> bool:
    value = _one(query, name)
    if value not in (None, "true", "false"):
        raise ValueError(f"{name}: true or false")
    return value == "true"


def _period(query: Any) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for name in ("since", "until"):
        value = _one(query, name)
        if value is None:
            raise ValueError(f"{name}: required, a UTC time like 2026-01-31T00:00:00Z")
        try:
            args[name] = stored_time(value)
        except ValueError:
            raise ValueError(f"{name}: expected a valid UTC time like 2026-01-31T00:00:00Z") from None
    reports.check_period(args["since"], args["until"])
    args["include_spam"] = _flag(query, "include_spam")
    args["include_test"] = _flag(query, "include_test")
    return args


def _check_params(query: Any, allowed: set[str]) -> None:
    unknown = sorted(set(query) - allowed)
    if unknown:
        raise ValueError(f"unknown query parameter(s): {', '.join(unknown)[:200]}")


def call_report_args(query: Any) -> tuple[dict[str, Any], str]:
    """The arguments of storage.reports.call_report from a query string, and the output format.
    Raises ValueError with a message that starts with the parameter's name."""
    _check_params(query, CALL_PARAMS)
    group = _one(query, "group")
    if group is None:
        raise ValueError(f"group: required, one or more of {', '.join(reports.GROUPS)}, comma-separated")
    if len(group) > 200:
        raise ValueError("group: too long")
    args = _period(query)
    args["group"] = reports.check_groups(group.split(","))
    tz = _one(query, "tz")
    args["tz"] = "UTC" if tz is None else tz
    reports.load_zone(args["tz"])  # ValueError "tz: ..."
    campaign = _one(query, "campaign")
    if campaign is not None and not _NAME_RE.fullmatch(campaign):
        raise ValueError("campaign: expected a campaign name")
    args["campaign"] = campaign
    fmt = _one(query, "format") or "json"
    if fmt not in ("json", "csv"):
        raise ValueError("format: json or csv")
    return args, fmt


def add_routes(app: web.Application, deps: "AdminDeps") -> None:
    async def calls_report(request: web.Request) -> web.Response:
        try:
            args, fmt = call_report_args(request.query)
        except ValueError as exc:
            return _error(400, str(exc))
        publishers = ({name: pool.publisher for name, pool in deps.tracking.pools.items()}
                      if deps.tracking is not None else {})
        try:
            report = await deps.store.run(reports.call_report, deps.store.db, publishers=publishers,
                                          campaigns=allowed_campaigns(request), **args)
        except reports.ReportTooLarge as exc:
            return _error(400, str(exc))
        if fmt == "json":
            return web.json_response(report)
        from ari_app.admin.http import _csv_cell, _csv_text  # the calls export's cells (formula-safe)

        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        body = _csv_text([_csv_cell(v) for v in row] for row in reports.csv_rows(report))
        return web.Response(body=body, content_type="text/csv", charset="utf-8", headers={
            "Content-Disposition": f'attachment; filename="ringpool-report-{stamp}.csv"',
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})

    async def pools_report(request: web.Request) -> web.Response:
        try:
            _check_params(request.query, POOL_PARAMS)
            args = _period(request.query)
        except ValueError as exc:
            return _error(400, str(exc))
        current = await deps.tracking.pools_status() if deps.tracking is not None else []
        return web.json_response(await deps.store.run(reports.pool_report, deps.store.db, current=current, **args))

    app.router.add_get("/api/v1/reports/calls", calls_report)
    app.router.add_get("/api/v1/reports/pools", pools_report)
    openapi.add_paths(app, PATHS, schemas=SCHEMAS)


# --- the OpenAPI description of these routes ------------------------------------------------------------------


def _param(name: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


_INT = {"type": "integer"}
_NINT = {"type": "integer", "nullable": True}
_NNUM = {"type": "number", "nullable": True}
_NS = {"type": "string", "nullable": True}
_TIME = {"type": "string", "pattern": f"^{openapi.TIME_PATTERN}$"}
_PERIOD = [
    _param("since", _TIME, "calls that arrived at or after this UTC time (e.g. 2026-01-01T00:00:00Z)", True),
    _param("until", _TIME, f"... and before this UTC time; at most {reports.MAX_DAYS} days after since", True),
    _param("include_spam", {"type": "boolean", "default": False},
           "count spam calls in the figures (by default they count only in spam_blocked)"),
    _param("include_test", {"type": "boolean", "default": False}, "count test calls from softphone accounts"),
]
_ERRORS = {"400": _err("a query parameter is missing, invalid, repeated or unknown; the message names it"),
           "401": _err("missing or invalid bearer token"),
           "403": _err("this token may not read reports (publisher tokens read only their calls)")}
_FIGURES = {
    "calls": _INT,
    "answered": {"type": "integer", "description": "answered (by Ringpool or the business)"},
    "bridged": {"type": "integer", "description": "connected to the business"},
    "spam_blocked": {"type": "integer", "description": "calls marked spam: refused by screening before answer, "
                                                       "or found spam later (counted whatever include_spam says)"},
    "avg_talk_seconds": {"type": "number", "nullable": True,
                         "description": "mean talk time of bridged calls; null when none"},
    "conversions": _INT,
    "revenue": {"type": "number", "description": "sum of the calls' revenue where their campaign's payout rules "
                                                "priced them, else of their conversion values (currencies are not "
                                                "converted)"},
    "payout": {"type": "number", "nullable": True,
               "description": "sum of the publisher payouts of the priced calls; null when none was priced"},
    "margin": {"type": "number", "nullable": True,
               "description": "sum of the priced calls' margins (revenue - payout); null when none was priced"},
}

SCHEMAS: dict[str, Any] = {
    "ReportFigures": {"type": "object", "required": list(_FIGURES), "properties": _FIGURES},
    "CallReportRow": {"allOf": [{"$ref": "#/components/schemas/ReportFigures"}, {
        "type": "object", "description": "the group columns asked for, then the figures", "properties": {
            "campaign": _NS, "publisher": {**_NS, "description": "the publisher of the call's pool"},
            "source": _NS, "medium": _NS, "keyword": _NS, "ad_campaign": _NS,
            "day": {"type": "string", "description": "local date in tz, YYYY-MM-DD"},
            "hour": {"type": "string",
                     "description": "local hour in tz with its offset, e.g. 2026-11-01T01:00:00-05:00"}}}]},
    "CallReport": {"type": "object", "required": ["since", "until", "tz", "group", "include_spam", "include_test",
                                                  "rows", "totals"], "properties": {
        "since": {"type": "string"}, "until": {"type": "string"}, "tz": {"type": "string"},
        "group": {"type": "array", "items": {"type": "string", "enum": list(reports.GROUPS)}},
        "campaign": _NS, "include_spam": {"type": "boolean"}, "include_test": {"type": "boolean"},
        "rows": {"type": "array", "items": {"$ref": "#/components/schemas/CallReportRow"}},
        "totals": {"$ref": "#/components/schemas/ReportFigures"}}},
    "PoolReportRow": {"type": "object", "required": ["pool", "configured", "calls", "overflow_calls",
                                                     "overflow_rate", "exhausted_alerts", "leases_granted"],
                      "properties": {
        "pool": {"type": "string"}, "configured": {"type": "boolean"}, "campaign": _NS, "mode": _NS,
        "publisher": _NS,
        "size": {**_NINT, "description": "numbers in the pool now (extension sites: extensions available)"},
        "max_size": _NINT, "leased_now": {**_NINT, "description": "numbers (extensions) leased now"},
        "utilisation": {**_NNUM, "description": "leased now / max_size (extension sites: / extensions available)"},
        "leases_granted": {"type": "integer", "description": "numbers leased to visitors in the period"},
        "exhausted_alerts": {"type": "integer",
                             "description": "'pool exhausted' alerts in the period (at most one per 5 minutes)"},
        "calls": {"type": "integer", "description": "calls to the pool's numbers in the period"},
        "overflow_calls": {"type": "integer", "description": "of which to its overflow number"},
        "overflow_rate": {**_NNUM, "description": "overflow_calls / calls; null without calls"}}},
    "PoolReport": {"type": "object", "required": ["since", "until", "pools", "totals"], "properties": {
        "since": {"type": "string"}, "until": {"type": "string"},
        "include_spam": {"type": "boolean"}, "include_test": {"type": "boolean"},
        "pools": {"type": "array", "items": {"$ref": "#/components/schemas/PoolReportRow"}},
        "totals": {"type": "object", "required": ["calls", "overflow_calls", "overflow_rate"], "properties": {
            "calls": _INT, "overflow_calls": _INT, "overflow_rate": _NNUM}}}},
}

PATHS: dict[str, Any] = {
    "/api/v1/reports/calls": {"get": {
        "operationId": "reportCalls", "tags": ["reports"],
        "summary": "Calls grouped by campaign, publisher, source, keyword, day or hour, with their outcomes",
        "description": (
            "One row per group that has calls (empty buckets are left out), sorted by the group columns in the "
            "order given (days and hours in time order, nulls last), and the totals. Days and hours are local to "
            "`tz`, exact across DST changes: the repeated hour of a fall-back day is two rows with different "
            "offsets. Spam calls count only in spam_blocked unless include_spam=true; test calls are left out "
            "unless include_test=true. Calls priced by their campaign's payout rules count their revenue, payout "
            "and margin; other calls count their conversion value as revenue and no payout (payout and margin "
            "are null for a group with no priced call). "
            f"At most {reports.MAX_ROWS} rows (more is a 400: narrow the period or the grouping). "
            "format=csv returns the rows as CSV (header: the group columns, then the figures)."),
        "parameters": [
            _param("group", {"type": "string", "pattern": GROUP_PATTERN, "maxLength": 200},
                   f"comma-separated, each at most once: {', '.join(reports.GROUPS)}", True),
            *_PERIOD[:2],
            _param("tz", {"type": "string", "pattern": TZ_PATTERN, "default": "UTC"},
                   "IANA time zone of the day and hour buckets, e.g. America/New_York"),
            _param("campaign", {"type": "string", "pattern": f"^{openapi.NAME_PATTERN}$"}, "only this campaign"),
            *_PERIOD[2:],
            _param("format", {"type": "string", "enum": ["json", "csv"], "default": "json"}, "response format")],
        "responses": {"200": {"description": "the report", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/CallReport"}},
            "text/csv": {"schema": {"type": "string"}}}}, **_ERRORS}}},
    "/api/v1/reports/pools": {"get": {
        "operationId": "reportPools", "tags": ["reports"],
        "summary": "Each pool's utilisation now and its overflow rate over a period",
        "description": (
            "size, leased_now and utilisation are the pools' state now; calls, overflow_calls (calls to the "
            "pool's overflow number), overflow_rate, leases_granted and exhausted_alerts cover [since, until). "
            "The overflow rate is measured on calls because exhausted alerts are rate-limited. Pools no longer "
            "configured that had calls in the period are listed with configured=false."),
        "parameters": _PERIOD,
        "responses": {"200": _json({"$ref": "#/components/schemas/PoolReport"}, "the pools"), **_ERRORS}}},
}
