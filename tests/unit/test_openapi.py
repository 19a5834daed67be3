"""The OpenAPI document and the route table agree, the document is valid OpenAPI 3.0.3, it is served without a
token, and other modules can contribute their routes' documentation."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin import openapi
from ari_app.admin.http import CSV_COLUMNS, AdminDeps, build_admin_app
from storage.calls import FINAL_DISPOSITIONS
from tests.unit.admin_fixtures import (click_to_call_for_docs, reloader_for_docs, screening_for_docs,
                                       tracking_for_docs)
from storage.db import open_database

TOKEN = "openapi-test-token-0123456789abcdef"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


async def _status() -> dict[str, Any]:
    return {"ari_connected": True, "database_ok": True}


def admin_app() -> web.Application:
    # Building the app touches no dependency: the route table and the document are all these tests need.
    return build_admin_app(AdminDeps(store=None, token=TOKEN, status=_status,  # type: ignore[arg-type]
                                     tracking=tracking_for_docs(), screening=screening_for_docs(),
                                     reloader=reloader_for_docs(), click_to_call=click_to_call_for_docs()))


def routed(app: web.Application) -> set[tuple[str, str]]:
    """(method, path) of every route; HEAD is the automatic twin of a GET (documented with it)."""
    pairs = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        resource = route.resource
        assert resource is not None
        path = resource.canonical
        if isinstance(resource, web.StaticResource):
            path += "/{filename}"
        pairs.add((route.method.lower(), path))
    return pairs


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method, path) for path, item in doc["paths"].items() for method in item if method in METHODS}


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    app = admin_app()
    routes, doc = routed(app), documented(openapi.document_for(app))
    assert routes - doc == set(), "routes missing from the OpenAPI document (ari_app/admin/openapi.py, or add_paths)"
    assert doc - routes == set(), "documented operations with no route"
    # the brief's minimum: the API, health and metrics are all there
    assert {("get", "/api/v1/calls"), ("get", "/api/v1/calls.csv"), ("get", "/api/v1/calls/{call_id}"),
            ("get", "/api/v1/openapi.json"), ("get", "/healthz"), ("get", "/metrics")} <= doc


def test_the_route_check_catches_an_undocumented_route() -> None:
    app = admin_app()

    async def handler(_request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/api/v1/undocumented", handler)
    assert ("get", "/api/v1/undocumented") in routed(app) - documented(openapi.document_for(app))


def test_the_document_is_valid_openapi_3_0() -> None:
    schemathesis = pytest.importorskip("schemathesis")
    doc = openapi.document_for(admin_app())
    assert doc["openapi"] == "3.0.3"
    schemathesis.openapi.from_dict(doc).validate()


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_refs_resolve_and_every_operation_has_success_and_errors() -> None:
    doc = openapi.build_document()
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for path, item in doc["paths"].items():
        for method, op in item.items():
            codes = set(op["responses"])
            assert any(code.startswith("2") for code in codes), (method, path)
            public = op.get("security") == []
            assert public == (path in ("/healthz", "/metrics", "/api/v1/openapi.json")), (method, path)
            if not public:
                assert "401" in codes and "403" in codes, (method, path)
            assert op.get("operationId"), (method, path)
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")) and path != "/healthz":  # /healthz: 503 with the status body
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_bearer_security_scheme_and_public_document_note() -> None:
    doc = openapi.build_document()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {"type": "http", "scheme": "bearer",
                                                                  "description": "the admin token"}
    assert doc["security"] == [{"bearerAuth": []}]
    assert "/api/v1/openapi.json" in doc["info"]["description"]


def test_call_fields_are_the_calls_table_and_the_csv_columns(tmp_path: Path) -> None:
    db = open_database(tmp_path / "schema.db")
    columns = [row[1] for row in db.conn.execute("PRAGMA table_info(calls)")]
    assert set(openapi.CALL_FIELDS) == set(columns), (
        "calls columns and openapi.CALL_FIELDS differ: document new columns there (type and CSV position)")
    assert len(openapi.CALL_FIELDS) == len(columns)
    assert CSV_COLUMNS == tuple(openapi.CALL_FIELDS)
    assert CSV_COLUMNS[:2] == ("id", "arrived_at")
    record = openapi.build_document()["components"]["schemas"]["CallRecord"]
    assert list(record["properties"]) == list(openapi.CALL_FIELDS)


def test_documented_filters_match_the_validation() -> None:
    doc = openapi.build_document()
    params = {p["name"]: p["schema"] for p in doc["paths"]["/api/v1/calls"]["get"]["parameters"]}
    assert params["disposition"]["enum"] == list(FINAL_DISPOSITIONS)
    assert params["limit"]["minimum"] == 1 and params["limit"]["maximum"] == 500
    csv_params = {p["name"] for p in doc["paths"]["/api/v1/calls.csv"]["get"]["parameters"]}
    assert csv_params == set(params) - {"limit", "cursor"}
    for name in ("campaign", "number", "since", "until", "cursor"):
        assert re.compile(params[name]["pattern"])  # Python and ECMA-262 agree on these simple patterns
    time = re.compile(params["since"]["pattern"])
    assert time.match("2026-01-31T12:00:00Z") and time.match("2026-01-31T12:00:00.123456Z")
    assert not time.match("2026-01-31T12:00:00") and not time.match("2026-01-31 12:00:00Z")


def test_build_document_takes_extra_paths_and_refuses_duplicates() -> None:
    extra = {"/t/v1/ping": {"get": {"operationId": "ping", "security": [],
                                    "responses": {"200": {"description": "pong"}}}}}
    doc = openapi.build_document(extra, {"Pong": {"type": "object"}})
    assert doc["paths"]["/t/v1/ping"]["get"]["operationId"] == "ping" and "Pong" in doc["components"]["schemas"]
    assert "/t/v1/ping" not in openapi.build_document()["paths"]  # nothing leaks between documents
    with pytest.raises(ValueError, match="twice"):
        openapi.build_document({"/api/v1/calls": {}})
    with pytest.raises(ValueError, match="twice"):
        openapi.build_document(None, {"Error": {}})


def register_ping(app: web.Application) -> None:
    """What a module such as ari_app/tracking/http.py does from build_admin_app: routes plus their documentation."""

    async def ping(_request: web.Request) -> web.Response:
        return web.json_response({"pong": True})

    app.router.add_get("/t/v1/ping", ping)
    openapi.add_paths(app, {"/t/v1/ping": {"get": {
        "operationId": "ping", "security": [], "summary": "public, no token",
        "responses": {"200": {"description": "pong", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Pong"}}}}}}}},
        schemas={"Pong": {"type": "object", "properties": {"pong": {"type": "boolean"}}}})


async def test_contributed_paths_are_served_and_satisfy_the_route_check() -> None:
    app = admin_app()
    register_ping(app)
    assert routed(app) == documented(openapi.document_for(app))
    with pytest.raises(ValueError, match="twice"):
        openapi.add_paths(app, {"/t/v1/ping": {}})
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        resp = await client.get("/api/v1/openapi.json")  # no token
        assert resp.status == 200 and resp.content_type == "application/json"
        doc = await resp.json()
        assert doc == openapi.document_for(app)
        assert "/t/v1/ping" in doc["paths"] and "Pong" in doc["components"]["schemas"]
        resp = await client.get("/api/v1/calls")  # everything else under /api still needs the token
        assert resp.status == 401
        resp = await client.get("/api/v1/openapi.json/x")
        assert resp.status == 401
    finally:
        await client.close()
