"""The dashboard's figures (storage/stats.py) on a real database, and their endpoints GET /api/v1/stats/today and
GET /api/v1/stats/hourly."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import sqlite_utils
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin.http import AdminDeps, build_admin_app
from storage import stats
from storage.async_store import AsyncCallStore
from storage.calls import CallStore, NewCall
from storage.db import open_database

TOKEN = "stats-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 5, 1, 14, 25, tzinfo=timezone.utc)

# id, arrived (UTC), campaign, decision, bridged, disposition (None: still up), spam, test call
CALLS: list[tuple[str, str, str | None, str, bool, str | None, int, int]] = [
    ("old", "2026-04-30T23:59:59.999Z", "spring", "proceed", True, "completed", 0, 0),   # yesterday
    ("a1", "2026-05-01T00:00:00.000Z", "spring", "proceed", True, "completed", 0, 0),    # exactly midnight
    ("a2", "2026-05-01T12:10:00.000Z", "spring", "proceed", False, "no_answer", 0, 0),
    ("a3", "2026-05-01T12:59:59.999Z", "autumn", "proceed", True, "completed", 1, 0),    # answered, marked spam
    ("r1", "2026-05-01T13:00:00.000Z", None, "reject", False, "rejected", 0, 0),         # not a tracking number
    ("r2", "2026-05-01T13:30:00.000Z", "autumn", "reject", False, "rejected", 1, 0),     # screened out as spam
    ("t1", "2026-05-01T14:05:00.000Z", "spring", "proceed", True, "completed", 0, 1),    # a softphone test call
    ("up", "2026-05-01T14:20:00.000Z", "spring", "proceed", True, None, 0, 0),           # still talking
]


def seed(db: sqlite_utils.Database) -> None:
    calls = CallStore(db)
    for call_id, at, campaign, decision, bridged, disposition, spam, test in CALLS:
        calls.create_call(NewCall(id=call_id, inbound_channel=f"chan-{call_id}", arrived_at=at, is_test=test,
                                  dialed_number="15550100001"))
        fields: dict[str, Any] = {"decision": decision, "campaign": campaign, "spam": spam}
        if bridged:
            fields["bridged_at"] = at
        calls.update_call(call_id, **fields)
        if disposition:
            calls.finish_call(call_id, disposition=disposition, ended_at=at)


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    database = open_database(tmp_path / "stats.db")
    seed(database)
    return database


# --- the SQL ---------------------------------------------------------------------------------------------------

def test_day_summary_counts_calls_answered_active_and_spam_blocked(db: sqlite_utils.Database) -> None:
    day = stats.day_summary(db, "2026-05-01T00:00:00.000Z")
    assert (day["calls"], day["answered"], day["active"]) == (7, 4, 1)
    # spam blocked: rejected before answer (r1, r2) or marked spam (a3, r2): each call once
    assert (day["spam_blocked"], day["rejected"], day["marked_spam"]) == (3, 2, 2)
    assert day["by_disposition"] == {"completed": 3, "no_answer": 1, "rejected": 2}
    assert day["by_campaign"] == [
        {"campaign": "spring", "calls": 4, "answered": 3, "spam_blocked": 0},
        {"campaign": "autumn", "calls": 2, "answered": 1, "spam_blocked": 2},
        {"campaign": None, "calls": 1, "answered": 0, "spam_blocked": 1},
    ]
    assert day["since"] == "2026-05-01T00:00:00.000Z" and day["until"] is None


def test_day_summary_window_and_test_filter(db: sqlite_utils.Database) -> None:
    # the browser's local midnight (UTC-2 here): a1 is the previous local day
    day = stats.day_summary(db, "2026-05-01T02:00:00.000Z")
    assert day["calls"] == 6
    window = stats.day_summary(db, "2026-05-01T12:00:00.000Z", "2026-05-01T13:00:00.000Z")
    assert window["calls"] == 2 and window["until"] == "2026-05-01T13:00:00.000Z"
    real = stats.day_summary(db, "2026-05-01T00:00:00.000Z", test=False)
    tests_only = stats.day_summary(db, "2026-05-01T00:00:00.000Z", test=True)
    assert (real["calls"], tests_only["calls"]) == (6, 1)
    empty = stats.day_summary(db, "2027-01-01T00:00:00.000Z")
    assert (empty["calls"], empty["active"], empty["spam_blocked"], empty["by_campaign"]) == (0, 0, 0, [])


def test_hourly_buckets_by_campaign(db: sqlite_utils.Database) -> None:
    data = stats.hourly(db, 4, now=NOW)
    assert data["hours"] == ["2026-05-01T11:00:00.000Z", "2026-05-01T12:00:00.000Z", "2026-05-01T13:00:00.000Z",
                             "2026-05-01T14:00:00.000Z"]
    assert data["series"] == [
        {"campaign": "spring", "counts": [0, 1, 0, 2], "total": 3},
        {"campaign": "autumn", "counts": [0, 1, 1, 0], "total": 2},
        {"campaign": None, "counts": [0, 0, 1, 0], "total": 1},  # no campaign: last
    ]
    assert data["totals"] == [0, 2, 2, 2]
    assert stats.hourly(db, 4, now=NOW, test=False)["totals"] == [0, 2, 2, 1]
    day = stats.hourly(db, 24, now=NOW)
    assert len(day["hours"]) == len(day["totals"]) == 24 and day["hours"][0] == "2026-04-30T15:00:00.000Z"
    assert sum(day["totals"]) == 8  # yesterday's 23:59:59.999 call is inside the last 24 hours
    quiet = stats.hourly(db, 2, now=datetime(2026, 6, 1, tzinfo=timezone.utc))
    assert quiet["series"] == [] and quiet["totals"] == [0, 0]


def test_hourly_bounds() -> None:
    db = open_database(":memory:")
    assert len(stats.hourly(db, stats.MAX_HOURS)["hours"]) == 168
    for bad in (0, stats.MAX_HOURS + 1):
        with pytest.raises(ValueError):
            stats.hourly(db, bad)


def test_the_queries_are_ranges_on_the_arrival_index(db: sqlite_utils.Database) -> None:
    """Every statement is parameterised and reads a range of an arrival index (calls_arrived, or calls_test with
    the test filter), never the whole table or another index over all time, with or without ANALYZE."""
    statements: list[tuple[str, list[Any]]] = []

    class Recording:
        def execute(self, sql: str, params: list[Any]) -> Any:
            statements.append((sql, params))
            return db.execute(sql, params)

    for analyzed in (False, True):
        if analyzed:
            db.execute("ANALYZE")
        statements.clear()
        for test in (None, False):
            stats.day_summary(Recording(), "2026-05-01T00:00:00.000Z", test=test)  # type: ignore[arg-type]
            stats.hourly(Recording(), 24, now=NOW, test=test)  # type: ignore[arg-type]
        assert len(statements) == 4
        for sql, params in statements:
            assert "?" in sql and "2026" not in sql  # parameterised
            plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
            assert plan[0].startswith(("SEARCH calls USING INDEX calls_arrived (arrived_at>?",
                                       "SEARCH calls USING INDEX calls_test (is_test=? AND arrived_at>?")), plan
            assert not any(step.startswith("SCAN") for step in plan), plan


# --- the endpoints ---------------------------------------------------------------------------------------------

@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    store = AsyncCallStore(tmp_path / "api.db")
    await store.open()
    await store.run(seed, store.db)

    async def status() -> dict[str, Any]:
        return {"ari_connected": True, "database_ok": True}

    client = TestClient(TestServer(build_admin_app(AdminDeps(store=store, token=TOKEN, status=status))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await store.close()


async def get(client: TestClient, path: str, **params: str) -> tuple[int, Any]:
    resp = await client.get(path, headers=AUTH, params=params or None)
    assert resp.content_type == "application/json"
    return resp.status, await resp.json()


async def test_stats_today_endpoint(client: TestClient) -> None:
    status, body = await get(client, "/api/v1/stats/today", since="2026-05-01T00:00:00Z")
    assert status == 200 and (body["calls"], body["spam_blocked"], body["active"]) == (7, 3, 1)
    assert body["since"] == "2026-05-01T00:00:00.000Z"
    status, body = await get(client, "/api/v1/stats/today", since="2026-05-01T00:00:00Z", test="false")
    assert status == 200 and body["calls"] == 6
    status, body = await get(client, "/api/v1/stats/today")  # default: since 00:00 UTC today
    assert status == 200 and body["since"] == datetime.now(timezone.utc).strftime("%Y-%m-%dT00:00:00.000Z")
    for params, word in (({"since": "yesterday"}, "since"), ({"since": "2026-02-30T00:00:00Z"}, "since"),
                         ({"test": "maybe"}, "test"), ({"day": "1"}, "unknown")):
        status, body = await get(client, "/api/v1/stats/today", **params)
        assert status == 400 and word in body["error"], params
    resp = await client.get("/api/v1/stats/today")
    assert resp.status == 401


async def test_stats_hourly_endpoint(client: TestClient) -> None:
    status, body = await get(client, "/api/v1/stats/hourly")
    assert status == 200 and len(body["hours"]) == 24 and body["hours"][-1].endswith(":00:00.000Z")
    status, body = await get(client, "/api/v1/stats/hourly", hours="168", test="true")
    assert status == 200 and len(body["totals"]) == 168
    for hours in ("0", "169", "-1", "abc", "1.5", "0024000"):
        status, body = await get(client, "/api/v1/stats/hourly", hours=hours)
        assert status == 400 and "hours" in body["error"], hours
    assert (await client.get("/api/v1/stats/hourly")).status == 401
