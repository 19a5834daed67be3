"""GET /api/v1/calls.csv against a real AsyncCallStore on a temporary file: columns, filters, streaming page by
page through the cursor pagination, CSV injection guard."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin import http as admin_http
from ari_app.admin import openapi
from ari_app.admin.http import CSV_COLUMNS, AdminDeps, _csv_cell, build_admin_app
from storage.async_store import AsyncCallStore
from storage.calls import NewCall

TOKEN = "csv-test-token-0123456789abcdefghij"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def t(seconds: int) -> str:
    return f"2026-11-22T17:{seconds // 60:02d}:{seconds % 60:02d}.000Z"


class CountingStore(AsyncCallStore):
    """Counts list_calls reads and the page size asked for."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.list_limits: list[int] = []

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        if method == "list_calls":
            self.list_limits.append(args[0].limit)
        return await super().call(method, *args, **kwargs)


class Api:
    def __init__(self, client: TestClient, store: CountingStore) -> None:
        self.client = client
        self.store = store

    async def csv(self, **params: str) -> tuple[int, list[list[str]], Any]:
        resp = await self.client.get("/api/v1/calls.csv", headers=AUTH, params=params or None)
        body = await resp.read()
        if resp.status != 200:
            return resp.status, (await resp.json())["error"], resp.headers
        assert resp.content_type == "text/csv" and resp.charset == "utf-8"
        return resp.status, list(csv.reader(io.StringIO(body.decode("utf-8"), newline=""))), resp.headers


async def add_call(store: AsyncCallStore, call_id: str, at: int, *, campaign: str = "spring",
                   dialed: str = "15550100001", caller: str | None = "15551110000", caller_name: str | None = None,
                   disposition: str | None = "completed", is_test: int = 0) -> None:
    await store.call("create_call", NewCall(id=call_id, inbound_channel=f"chan-{call_id}", arrived_at=t(at),
                                             dialed_number=dialed, caller_number=caller, caller_name=caller_name,
                                             is_test=is_test, test_account="alice" if is_test else None))
    await store.call("update_call", call_id, campaign=campaign, decision="proceed", destination="desk",
                     decision_reasons=[f"tracking number of campaign {campaign}", "caller not blocked"])
    if disposition:
        await store.call("finish_call", call_id, disposition=disposition, ended_at=t(at + 5), hangup_cause=16,
                         hangup_side="caller")


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    store = CountingStore(tmp_path / "csv.db")
    await store.open()
    await add_call(store, "call-1", 10, caller_name='=HYPERLINK("http://evil.example","click")')
    await add_call(store, "call-2", 20, campaign="autumn", dialed="15550100101", caller="+15552220000",
                   caller_name='Zoë "Z" O\'Neil, Esq.\nline two', disposition="busy")
    await add_call(store, "call-3", 30, caller=None, caller_name="@SUM(A1:A9)", disposition=None)
    await add_call(store, "call-4", 40, caller_name="\tcmd", disposition="no_answer", is_test=1)
    await store.call("add_detection", "call-4", leg="caller", source="dtmf", kind="dtmf", start=1.0, duration=0.1,
                     details={"digit": "1"}, flags={"machine_dtmf": 1}, appends={"dtmf_digits": "-1+1"}, values={})

    async def status() -> dict[str, Any]:
        return {"ari_connected": True, "database_ok": True}

    client = TestClient(TestServer(build_admin_app(AdminDeps(store=store, token=TOKEN, status=status))))
    await client.start_server()
    try:
        yield Api(client, store)
    finally:
        await client.close()
        await store.close()


def by_id(rows: list[list[str]]) -> dict[str, dict[str, str]]:
    header, *body = rows
    return {row[0]: dict(zip(header, row)) for row in body}


async def test_export_columns_order_and_headers(api: Api) -> None:
    status, rows, headers = await api.csv()
    assert status == 200
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[0] for r in rows[1:]] == ["call-4", "call-3", "call-2", "call-1"]  # newest first, like the list
    assert all(len(r) == len(CSV_COLUMNS) for r in rows)
    disposition = headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="ringpool-calls-') and disposition.endswith('.csv"')
    assert headers["Cache-Control"] == "no-store"
    call = by_id(rows)["call-2"]
    assert call["campaign"] == "autumn" and call["disposition"] == "busy" and call["hangup_cause"] == "16"
    assert call["caller_number"] == "+15552220000"  # a number, not a formula: no apostrophe
    assert call["decision_reasons"] == "tracking number of campaign autumn; caller not blocked"
    assert call["caller_name"] == 'Zoë "Z" O\'Neil, Esq.\nline two'  # quoting round-trips
    assert call["total_seconds"] == "5.0" and call["talk_seconds"] == "" and call["is_test"] == "0"
    assert by_id(rows)["call-3"]["disposition"] == "" and by_id(rows)["call-3"]["ended_at"] == ""


async def test_csv_injection_guard(api: Api) -> None:
    calls = by_id((await api.csv())[1])
    assert calls["call-1"]["caller_name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert calls["call-3"]["caller_name"] == "'@SUM(A1:A9)"
    assert calls["call-4"]["caller_name"] == "'\tcmd"
    assert calls["call-4"]["dtmf_digits"] == "'-1+1" and calls["call-4"]["machine_dtmf"] == "1"


@pytest.mark.parametrize(("value", "cell"), [
    (None, ""),
    (0, 0),
    (-3, -3),
    (4.5, 4.5),
    ("plain", "plain"),
    ("=1+1", "'=1+1"),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(1)", "'@SUM(1)"),
    ("\t=x", "'\t=x"),
    ("\r=x", "'\r=x"),
    ("+15551234567", "+15551234567"),
    ("-12.5", "-12.5"),
    ("a=b", "a=b"),
    (["=a", "b"], "'=a; b"),
    ({"k": "v"}, '{"k": "v"}'),
])
def test_csv_cell(value: Any, cell: Any) -> None:
    assert _csv_cell(value) == cell


async def test_filters_are_those_of_the_list(api: Api) -> None:
    async def ids(**params: str) -> list[str]:
        status, rows, _ = await api.csv(**params)
        assert status == 200
        return [r[0] for r in rows[1:]]

    assert await ids(campaign="autumn") == ["call-2"]
    assert await ids(number="+15550100101") == ["call-2"]  # dialed or caller number; + ignored
    assert await ids(disposition="no_answer") == ["call-4"]
    assert await ids(test="true") == ["call-4"]
    assert await ids(test="false") == ["call-3", "call-2", "call-1"]
    assert await ids(since="2026-11-22T17:00:20Z", until="2026-11-22T17:00:40Z") == ["call-3", "call-2"]
    assert await ids(campaign="none-such") == []
    status, rows, _ = await api.csv(campaign="none-such")
    assert rows == [list(CSV_COLUMNS)]  # always the header row


@pytest.mark.parametrize(("params", "name"), [
    ({"limit": "10"}, "limit"),
    ({"cursor": "abc"}, "cursor"),
    ({"campain": "spring"}, "campain"),
    ({"since": "yesterday"}, "since"),
    ({"disposition": "hung_up"}, "disposition"),
    ({"number": "555-CALL"}, "number"),
])
async def test_bad_query_is_400_json(api: Api, params: dict[str, str], name: str) -> None:
    status, error, _ = await api.csv(**params)
    assert status == 400 and name in error


async def test_needs_the_token(api: Api) -> None:
    resp = await api.client.get("/api/v1/calls.csv")
    assert resp.status == 401 and "token" in (await resp.json())["error"]


async def test_streams_every_row_page_by_page(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(23):
        await add_call(api.store, f"bulk-{i:02d}", 100 + i, campaign="bulk")
    monkeypatch.setattr(admin_http, "CSV_PAGE_SIZE", 5)
    api.store.list_limits.clear()
    status, rows, _ = await api.csv(campaign="bulk")
    assert status == 200
    assert [r[0] for r in rows[1:]] == [f"bulk-{i:02d}" for i in reversed(range(23))]
    assert api.store.list_limits == [5] * 5  # 5 reads of at most 5 rows: memory does not grow with the export


async def test_export_stops_at_the_maximum(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(admin_http, "CSV_PAGE_SIZE", 2)
    monkeypatch.setattr(openapi, "CSV_MAX_ROWS", 3)
    status, rows, _ = await api.csv()
    assert status == 200 and [r[0] for r in rows[1:]] == ["call-4", "call-3", "call-2"]


async def test_route_does_not_shadow_a_call_id(api: Api) -> None:
    resp = await api.client.get("/api/v1/calls/call-1", headers=AUTH)
    assert resp.status == 200 and (await resp.json())["id"] == "call-1"
    resp = await api.client.get("/api/v1/calls/calls.csv", headers=AUTH)
    assert resp.status == 404
