"""ari_app.admin.http against a real AsyncCallStore on a temporary file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin.http import AdminDeps, build_admin_app
from storage.async_store import AsyncCallStore
from storage.calls import NewCall

TOKEN = "test-token-0123456789abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def t(seconds: int, millis: int = 0) -> str:
    return f"2026-11-22T17:00:{seconds:02d}.{millis:03d}Z"


CALLS = [
    # id, arrived second, campaign, dialed, caller, disposition
    ("call-1", 10, "spring", "15550100001", "15551110000", "completed"),
    ("call-2", 20, "spring", "15550100002", "15552220000", "no_answer"),
    ("call-3", 30, "autumn", "15550100101", "15550100001", "busy"),
    ("call-4", 40, "autumn", "15550100101", "15553330000", None),
]


class App:
    def __init__(self, client: TestClient, status: dict[str, Any], store: AsyncCallStore) -> None:
        self.client = client
        self.status = status
        self.store = store

    async def get(self, path: str, *, auth: bool = True, **params: str) -> tuple[int, Any, Any]:
        resp = await self.client.get(path, headers=AUTH if auth else {}, params=params or None)
        assert resp.content_type == "application/json", (resp.status, await resp.text())
        return resp.status, await resp.json(), resp.headers


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    store = AsyncCallStore(tmp_path / "admin.db")
    await store.open()
    for call_id, at, campaign, dialed, caller, disposition in CALLS:
        await store.call("create_call", NewCall(id=call_id, inbound_channel=f"chan-{call_id}", arrived_at=t(at),
                                                 dialed_number=dialed, caller_number=caller))
        await store.call("update_call", call_id, campaign=campaign, decision="proceed",
                         decision_reasons=[f"tracking number of campaign {campaign}"])
        await store.call("add_leg", call_id, f"out-{call_id}", "outbound", destination="desk", created_at=t(at + 1))
        await store.call("add_event", call_id, "dialing", {"destination": "desk"}, at=t(at + 1))
        if disposition:
            await store.call("finish_call", call_id, disposition=disposition, ended_at=t(at + 5))
    status: dict[str, Any] = {"ari_connected": True, "database_ok": True, "open_calls": 1}

    async def get_status() -> dict[str, Any]:
        return dict(status)

    client = TestClient(TestServer(build_admin_app(AdminDeps(store=store, token=TOKEN, status=get_status))))
    await client.start_server()
    try:
        yield App(client, status, store)
    finally:
        await client.close()
        await store.close()


def ids(body: dict[str, Any]) -> list[str]:
    return [c["id"] for c in body["calls"]]


# --- health -----------------------------------------------------------------------------------------


async def test_healthz_needs_no_token_and_reflects_status(app: App) -> None:
    status, body, _ = await app.get("/healthz", auth=False)
    assert status == 200 and body["ari_connected"] is True and body["open_calls"] == 1
    app.status["ari_connected"] = False
    status, body, _ = await app.get("/healthz", auth=False)
    assert status == 503 and body["ari_connected"] is False
    app.status.update(ari_connected=True, database_ok=False)
    status, _, _ = await app.get("/healthz", auth=False)
    assert status == 503


# --- auth -------------------------------------------------------------------------------------------


async def test_calls_without_token_is_401(app: App) -> None:
    status, body, headers = await app.get("/api/v1/calls", auth=False)
    assert status == 401
    assert "token" in body["error"]
    assert headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", [
    "Bearer wrong-token",
    f"Bearer {TOKEN}x",
    f"Basic {TOKEN}",
    TOKEN,
    "Bearer ",
])
async def test_wrong_token_is_401(app: App, header: str) -> None:
    resp = await app.client.get("/api/v1/calls", headers={"Authorization": header})
    assert resp.status == 401
    assert (await resp.json())["error"]
    assert "WWW-Authenticate" in resp.headers


async def test_auth_applies_to_unknown_api_routes_too(app: App) -> None:
    status, _, _ = await app.get("/api/v1/secret", auth=False)
    assert status == 401


async def test_bearer_scheme_is_case_insensitive(app: App) -> None:
    resp = await app.client.get("/api/v1/calls", headers={"Authorization": f"bearer {TOKEN}"})
    assert resp.status == 200


# --- listing ----------------------------------------------------------------------------------------


async def test_list_calls_with_token(app: App) -> None:
    status, body, _ = await app.get("/api/v1/calls")
    assert status == 200
    assert ids(body) == ["call-4", "call-3", "call-2", "call-1"]
    assert body["next_cursor"] is None
    first = body["calls"][-1]
    assert first["campaign"] == "spring" and first["disposition"] == "completed"
    assert first["decision_reasons"] == ["tracking number of campaign spring"]
    assert first["talk_seconds"] is None and first["ring_seconds"] == 4.0


async def test_list_filters(app: App) -> None:
    assert ids((await app.get("/api/v1/calls", campaign="autumn"))[1]) == ["call-4", "call-3"]
    assert ids((await app.get("/api/v1/calls", number="+15550100001"))[1]) == ["call-3", "call-1"]
    assert ids((await app.get("/api/v1/calls", disposition="busy"))[1]) == ["call-3"]
    assert ids((await app.get("/api/v1/calls", since="2026-11-22T17:00:20Z"))[1]) == ["call-4", "call-3", "call-2"]
    assert ids((await app.get("/api/v1/calls", until="2026-11-22T17:00:20Z"))[1]) == ["call-1"]
    assert ids((await app.get("/api/v1/calls", campaign="spring", until="2026-11-22T17:00:30Z",
                              since="2026-11-22T17:00:15Z"))[1]) == ["call-2"]
    assert ids((await app.get("/api/v1/calls", campaign="none-such"))[1]) == []


async def test_score_range_filters(app: App) -> None:
    for call_id, quality, score1 in (("call-1", 80, 5), ("call-2", 40, 35), ("call-3", 60, 75)):
        await app.store.call("update_call", call_id, quality=quality, score1=score1)
    assert ids((await app.get("/api/v1/calls", min_quality="50"))[1]) == ["call-3", "call-1"]
    assert ids((await app.get("/api/v1/calls", min_quality="50", max_quality="70"))[1]) == ["call-3"]
    assert ids((await app.get("/api/v1/calls", max_score="35"))[1]) == ["call-2", "call-1"]
    assert ids((await app.get("/api/v1/calls", min_score="70"))[1]) == ["call-3"]
    status, body, _ = await app.get("/api/v1/calls", min_quality="101")
    assert status == 400 and "min_quality" in body["error"]


async def test_fractional_times_compare_by_value(app: App) -> None:
    # 17:00:20.5 is after call-2 (17:00:20.000) whatever the number of fraction digits given
    for since in ("2026-11-22T17:00:20.5Z", "2026-11-22T17:00:20.500Z", "2026-11-22T17:00:20.500000Z"):
        assert ids((await app.get("/api/v1/calls", since=since))[1]) == ["call-4", "call-3"], since
    assert ids((await app.get("/api/v1/calls", since="2026-11-22T17:00:20.0Z"))[1]) == ["call-4", "call-3", "call-2"]


async def test_pagination_through_the_api(app: App) -> None:
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        status, body, _ = await app.get("/api/v1/calls", **params)
        assert status == 200
        seen += ids(body)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["call-4", "call-3", "call-2", "call-1"]


@pytest.mark.parametrize(("params", "names"), [
    ({"campain": "spring"}, "campain"),
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-11-22 17:00:00"}, "since"),
    ({"until": "2026-02-30T12:00:00Z"}, "until"),
    ({"until": "2026-11-22T17:00:00Z\n"}, "until"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "abc"}, "limit"),
    ({"limit": "-1"}, "limit"),
    ({"limit": "\u00b2"}, "limit"),
    ({"disposition": "hung_up"}, "disposition"),
    ({"cursor": "not-a-cursor!"}, "cursor"),
    ({"cursor": "bm9waXBl"}, "cursor"),
    ({"number": "555-CALL"}, "number"),
    ({"number": "555\n"}, "number"),
    ({"campaign": "Spring Sale"}, "campaign"),
])
async def test_bad_filters_are_400_naming_the_parameter(app: App, params: dict[str, str], names: str) -> None:
    status, body, _ = await app.get("/api/v1/calls", **params)
    assert status == 400, body
    assert names in body["error"]


# --- one call ---------------------------------------------------------------------------------------


async def test_get_call_with_legs_and_events(app: App) -> None:
    status, body, _ = await app.get("/api/v1/calls/call-2")
    assert status == 200
    assert body["id"] == "call-2" and body["disposition"] == "no_answer"
    assert [leg["channel_id"] for leg in body["legs"]] == ["chan-call-2", "out-call-2"]
    assert [e["kind"] for e in body["events"]] == ["arrived", "dialing", "ended"]
    assert body["events"][1]["data"] == {"destination": "desk"}


async def test_get_call_requires_token(app: App) -> None:
    status, _, _ = await app.get("/api/v1/calls/call-2", auth=False)
    assert status == 401


async def test_unknown_call_is_404(app: App) -> None:
    status, body, _ = await app.get("/api/v1/calls/call-999")
    assert status == 404 and "call-999" in body["error"]


@pytest.mark.parametrize("raw", ["bad%20id", "x%27%20OR%201=1", "a%0A", "%C3%A9t%C3%A9", "x" * 81])
async def test_odd_call_id_is_400(app: App, raw: str) -> None:
    status, body, _ = await app.get(f"/api/v1/calls/{raw}")
    assert status == 400 and "call id" in body["error"]


async def test_unknown_route_is_404_json(app: App) -> None:
    status, body, _ = await app.get("/nope", auth=False)
    assert status == 404 and body["error"]
    status, body, _ = await app.get("/api/v2/calls")
    assert status == 404 and body["error"]


async def test_wrong_method_is_json_error(app: App) -> None:
    resp = await app.client.post("/api/v1/calls", headers=AUTH)
    assert resp.status == 405
    assert (await resp.json())["error"]
