"""The configuration through the admin API: reload, campaigns, destinations, buyers, pools and webhooks, IVR flows
and a bulk import of tracking numbers. Every change is validated by loading the whole configuration; it applies
at once, without a restart and without touching calls in progress (ari_app/config_reload.py)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from ari_app.admin import openapi
from ari_app.config import NAME_RE, normalise_number
from ari_app.config_reload import SECTIONS, Applied, ConfigReloader, NotManaged, RestartNeeded
from ari_app.yaml_located import ConfigError

MAX_BODY = 1024 * 1024  # a flow or a CSV file
MAX_ROWS = 10_000
NUMBER_CHARS = frozenset("+0123456789 ()-.")


def _error(status: int, message: str) -> web.Response:
    return openapi.error_response(status, message)


SECRET_WORDS = ("secret", "password", "token", "key")


def _jsonable(value: Any) -> Any:
    """A configured resource as JSON (dataclasses, paths, times and tuples included), secrets redacted: a
    read-only token sees how things are set up, not the webhook secrets or site keys."""
    if is_dataclass(value):
        value = asdict(value)
    return _redact(json.loads(json.dumps(value, default=str)))


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "[redacted]" if v and any(w in k.lower() for w in SECRET_WORDS) and isinstance(v, str)
                else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v) for v in value]
    return value


async def _apply(change: Any) -> web.Response:
    try:
        applied: Applied = await change
    except ConfigError as exc:
        return _error(400, str(exc))
    except RestartNeeded as exc:
        return _error(409, str(exc))
    except NotManaged as exc:
        return _error(409, str(exc))
    except KeyError as exc:
        return _error(404, str(exc.args[0]) if exc.args else "not found")
    except ValueError as exc:
        return _error(400, str(exc))
    return web.json_response({"applied": applied.as_dict()})


def add_routes(app: web.Application, reloader: ConfigReloader) -> None:
    def section_of(request: web.Request) -> str:
        section = request.match_info["section"]
        if section not in SECTIONS:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no section {section!r}: one of {', '.join(SECTIONS)}"}),
                                   content_type="application/json")
        return section

    def name_of(request: web.Request, key: str = "name") -> str:
        name = request.match_info[key]
        if not NAME_RE.match(name):
            raise web.HTTPBadRequest(text=json.dumps({"error": "name: lower-case letters, digits, - and _"}),
                                     content_type="application/json")
        return name

    async def reload(_request: web.Request) -> web.Response:
        return await _apply(reloader.reload())

    async def list_items(request: web.Request) -> web.Response:
        section = section_of(request)
        items = getattr(reloader.settings, section)
        return web.json_response({"items": [{"name": name, "source": reloader.source_of(section, name),
                                             "settings": _jsonable(item)} for name, item in sorted(items.items())]})

    async def get_item(request: web.Request) -> web.Response:
        section, name = section_of(request), name_of(request)
        item = getattr(reloader.settings, section).get(name)
        if item is None:
            return _error(404, f"no {section[:-1]} named {name!r}")
        return web.json_response({"name": name, "source": reloader.source_of(section, name),
                                  "settings": _jsonable(item)})

    async def put_item(request: web.Request) -> web.Response:
        section, name = section_of(request), name_of(request)
        try:
            body = await openapi.read_json_object(request)
        except ValueError as exc:
            return _error(400, str(exc))
        if body.get("name", name) != name:
            return _error(400, f"name: {body['name']!r} differs from the path's {name!r}")
        return await _apply(reloader.put(section, name, body))

    async def delete_item(request: web.Request) -> web.Response:
        return await _apply(reloader.delete(section_of(request), name_of(request)))

    async def list_flows(_request: web.Request) -> web.Response:
        managed = reloader.flows.resolve()
        return web.json_response({"flows": [
            {"name": name, "source": "api" if Path(flow.file).parent.resolve() == managed else "file",
             "start": flow.start,
             "nodes": len(flow.nodes), "description": flow.description}
            for name, flow in sorted(reloader.settings.flows.items())]})

    async def get_flow(request: web.Request) -> web.Response:
        name = name_of(request)
        flow = reloader.settings.flows.get(name)
        if flow is None:
            return _error(404, f"no flow named {name!r}")
        text = await asyncio.get_running_loop().run_in_executor(None, _read_text, flow.file)
        return web.Response(text=text, content_type="text/yaml")

    async def put_flow(request: web.Request) -> web.Response:
        name = name_of(request)
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _error(413, f"a flow is at most {MAX_BODY} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, "the flow must be UTF-8 YAML text")
        return await _apply(reloader.put_flow(name, text))

    async def delete_flow(request: web.Request) -> web.Response:
        return await _apply(reloader.delete_flow(name_of(request)))

    async def import_numbers(request: web.Request) -> web.Response:
        raw = await request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            return _error(413, f"at most {MAX_BODY} bytes")
        try:
            rows, errors = check_rows(raw.decode("utf-8-sig"), reloader.settings)
        except (UnicodeDecodeError, csv.Error, ValueError) as exc:
            return _error(400, f"CSV: {exc}")
        if not rows:
            return web.json_response({"error": "no row can be imported", "imported": 0, "errors": errors},
                                     status=400)
        batch = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        response = await _apply(reloader.import_numbers(rows, batch))
        if response.status != 200:
            return response
        return web.json_response({"imported": len(rows), "errors": errors,
                                  "applied": json.loads(response.body)["applied"]})

    async def list_numbers(request: web.Request) -> web.Response:
        campaign = request.query.get("campaign")
        numbers = [{"number": n.number, "campaign": n.campaign, "pool": n.pool, "role": n.role}
                   for n in sorted(reloader.settings.numbers.values(), key=lambda n: n.number)
                   if campaign is None or n.campaign == campaign]
        return web.json_response({"numbers": numbers, "inventory": list(reloader.settings.inventory)})

    async def delete_number(request: web.Request) -> web.Response:
        number = normalise_number(request.match_info["number"])
        if not 3 <= len(number) <= 20:
            return _error(400, "number: digits")
        return await _apply(reloader.delete_number(number))

    app.router.add_post("/api/v1/config/reload", reload)
    app.router.add_get("/api/v1/numbers", list_numbers)
    app.router.add_delete("/api/v1/numbers/{number}", delete_number)
    app.router.add_get("/api/v1/config/{section}", list_items)
    app.router.add_get("/api/v1/config/{section}/{name}", get_item)
    app.router.add_put("/api/v1/config/{section}/{name}", put_item)
    app.router.add_delete("/api/v1/config/{section}/{name}", delete_item)
    app.router.add_get("/api/v1/flows", list_flows)
    app.router.add_get("/api/v1/flows/{name}", get_flow)
    app.router.add_put("/api/v1/flows/{name}", put_flow)
    app.router.add_delete("/api/v1/flows/{name}", delete_flow)
    app.router.add_post("/api/v1/numbers/import", import_numbers)
    openapi.add_paths(app, PATHS)


def _read_text(file: str) -> str:
    with open(file, encoding="utf-8") as handle:
        return handle.read()


def check_rows(text: str, settings: Any) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The CSV's rows (``number,campaign``, a header line first) split into importable rows and per-row errors:
    each error names the row (1 = the first data row), the values and why."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or {"number", "campaign"} - {f.strip().lower() for f in reader.fieldnames}:
        raise ValueError("the first line must name the columns: number,campaign")
    rows: list[dict[str, str]] = []
    errors: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(reader, start=1):
        if index > MAX_ROWS:
            raise ValueError(f"at most {MAX_ROWS} rows per import")
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None}
        number, campaign = row.get("number", ""), row.get("campaign", "")
        digits = normalise_number(number)
        problem = None
        if not number or set(number) - NUMBER_CHARS or not 3 <= len(digits) <= 20:
            problem = "number: digits, with an optional + and separators"
        elif campaign not in settings.campaigns:
            problem = f"campaign: no campaign named {campaign!r}"
        elif digits in settings.numbers or digits in settings.inventory:
            owner = settings.numbers[digits].campaign if digits in settings.numbers else "the inventory"
            problem = f"number: {digits} is already a tracking number of {owner}"
        elif digits in seen:
            problem = f"number: {digits} is also on row {seen[digits]}"
        if problem:
            errors.append({"row": index, "number": number, "campaign": campaign, "error": problem})
            continue
        seen[digits] = index
        rows.append({"number": digits, "campaign": campaign})
    return rows, errors


_APPLIED = {"type": "object", "properties": {"applied": {"type": "object"}}}
_ERRS = {
    "400": openapi.error_content("the change does not load: the message names the file, line and key"),
    "401": openapi.error_content("missing or invalid bearer token"),
    "403": openapi.error_content("the token's role may not change the configuration"),
}
_SECTION = {"name": "section", "in": "path", "required": True,
            "schema": {"type": "string", "enum": list(SECTIONS)}}
_NAME = {"name": "name", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": f"^{openapi.NAME_PATTERN}$"}}
_ITEM = {"type": "object", "properties": {"name": {"type": "string"}, "source": {"type": "string"},
                                          "settings": {"type": "object"}}}
PATHS: dict[str, Any] = {
    "/api/v1/config/reload": {"post": {
        "operationId": "reloadConfig", "tags": ["config"],
        "summary": "Read the configuration file again and apply it (also on SIGHUP); calls in progress go on",
        "responses": {"200": openapi.json_content(_APPLIED, "applied"), **_ERRS,
                      "409": openapi.error_content("a setting that needs a restart changed")}}},
    "/api/v1/config/{section}": {"get": {
        "operationId": "listConfigItems", "tags": ["config"], "parameters": [_SECTION],
        "summary": "Campaigns, destinations, buyers, pools or webhooks as configured, each with its source "
                   "(file: the operator's file; api: made through this API)",
        "responses": {"200": openapi.json_content({"type": "object", "properties": {
            "items": {"type": "array", "items": _ITEM}}}, "the items"),
            "401": _ERRS["401"], "404": openapi.error_content("no such section")}}},
    "/api/v1/config/{section}/{name}": {
        "get": {"operationId": "getConfigItem", "tags": ["config"], "parameters": [_SECTION, _NAME],
                "summary": "One configured resource",
                "responses": {"200": openapi.json_content(_ITEM, "the resource"), "400": _ERRS["400"],
                              "401": _ERRS["401"], "404": openapi.error_content("no such resource")}},
        "put": {"operationId": "putConfigItem", "tags": ["config"], "parameters": [_SECTION, _NAME],
                "summary": "Create or replace a resource made through the API; the body is its configuration "
                           "as in the YAML file (docs/routing.md, README); applied at once",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                "responses": {"200": openapi.json_content(_APPLIED, "applied"), **_ERRS,
                              "404": openapi.error_content("no such section"),
                              "409": openapi.error_content("defined in the configuration file, or needs a restart")}},
        "delete": {"operationId": "deleteConfigItem", "tags": ["config"], "parameters": [_SECTION, _NAME],
                   "summary": "Delete a resource made through the API (refused while others refer to it)",
                   "responses": {"200": openapi.json_content(_APPLIED, "applied"), **_ERRS,
                                 "404": openapi.error_content("no such resource"),
                                 "409": openapi.error_content("defined in the configuration file")}}},
    "/api/v1/flows": {"get": {
        "operationId": "listFlows", "tags": ["config"], "summary": "The IVR flows and where each is defined",
        "responses": {"200": openapi.json_content({"type": "object", "properties": {
            "flows": {"type": "array", "items": {"type": "object"}}}}, "the flows"), "401": _ERRS["401"]}}},
    "/api/v1/flows/{name}": {
        "get": {"operationId": "getFlow", "tags": ["config"], "parameters": [_NAME], "summary": "A flow's YAML",
                "responses": {"200": {"description": "the flow", "content": {"text/yaml": {"schema": {
                    "type": "string"}}}}, "400": _ERRS["400"], "401": _ERRS["401"],
                    "404": openapi.error_content("no such flow")}},
        "put": {"operationId": "putFlow", "tags": ["config"], "parameters": [_NAME],
                "summary": "Create or replace a flow (YAML text, ivr/flow.py's format); validated with every "
                           "campaign that uses it before it goes live",
                "requestBody": {"required": True, "content": {"text/yaml": {"schema": {"type": "string"}}}},
                "responses": {"200": openapi.json_content(_APPLIED, "applied"), **_ERRS,
                              "409": openapi.error_content("defined in the flows folder of the file"),
                              "413": openapi.error_content("too large")}},
        "delete": {"operationId": "deleteFlow", "tags": ["config"], "parameters": [_NAME],
                   "summary": "Delete a flow made through the API (refused while a campaign uses it)",
                   "responses": {"200": openapi.json_content(_APPLIED, "applied"), **_ERRS,
                                 "404": openapi.error_content("no such flow made through the API")}}},
    "/api/v1/numbers": {"get": {
        "operationId": "listNumbers", "tags": ["config"], "summary": "The tracking numbers as configured now",
        "parameters": [{"name": "campaign", "in": "query", "required": False,
                        "schema": {"type": "string", "pattern": f"^{openapi.NAME_PATTERN}$"}}],
        "responses": {"200": openapi.json_content({"type": "object", "properties": {
            "numbers": {"type": "array", "items": {"type": "object"}},
            "inventory": {"type": "array", "items": {"type": "string"}}}}, "numbers"), "401": _ERRS["401"]}}},
    "/api/v1/numbers/{number}": {"delete": {
        "operationId": "deleteNumber", "tags": ["config"],
        "summary": "Remove an imported tracking number (numbers of the file or of a campaign are changed there)",
        "parameters": [{"name": "number", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": f"^{openapi.NUMBER_PATTERN}$"}}],
        "responses": {"200": openapi.json_content(_APPLIED, "applied"), **_ERRS,
                      "404": openapi.error_content("no such tracking number"),
                      "409": openapi.error_content("the number is configured in a campaign or the file")}}},
    "/api/v1/numbers/import": {"post": {
        "operationId": "importNumbers", "tags": ["config"],
        "summary": "Add tracking numbers from CSV (header number,campaign); rows with a problem are reported "
                   "one by one and the others imported",
        "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}},
        "responses": {"200": openapi.json_content({"type": "object", "properties": {
            "imported": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "object"}},
            "applied": {"type": "object"}}}, "what was imported, and each row that was not"),
            **_ERRS, "409": openapi.error_content("needs a restart"), "413": openapi.error_content("too large")}}},
}
