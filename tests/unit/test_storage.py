"""storage: migrations, call records, derived durations, filters, pagination, catalogue, async wrapper."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import sqlite_utils

from storage.async_store import AsyncCallStore
from storage.calls import CallFilter, CallStore, NewCall, decode_cursor, encode_cursor
from storage.db import format_time, migrate, open_database, parse_time, schema_version, seconds_between
from storage.schema import MIGRATIONS


def t(seconds: float) -> str:
    """A storage timestamp `seconds` after 2026-11-22T17:00:00Z."""
    whole, frac = divmod(round(seconds * 1000), 1000)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2026-11-22T{17 + hours:02d}:{minutes:02d}:{secs:02d}.{frac:03d}Z"


@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    database = open_database(tmp_path / "state" / "ringpool.db")
    yield database
    database.conn.close()


@pytest.fixture
def store(db: sqlite_utils.Database) -> CallStore:
    return CallStore(db)


def new_call(call_id: str, at: float, **extra: object) -> NewCall:
    return NewCall(id=call_id, inbound_channel=f"in-{call_id}", arrived_at=t(at), **extra)


# --- database ---------------------------------------------------------------------------------------


def test_time_helpers_round_trip() -> None:
    assert t(0) == "2026-11-22T17:00:00.000Z" and t(3725.5) == "2026-11-22T18:02:05.500Z"
    assert format_time(parse_time(t(12.345))) == t(12.345)
    assert seconds_between(t(1), t(31.25)) == 30.25
    assert seconds_between(None, t(1)) is None and seconds_between(t(1), None) is None


def test_migrations_applied_once_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "r.db"  # parent folders are created
    first = open_database(path)
    assert schema_version(first) == len(MIGRATIONS)
    assert {"calls", "call_legs", "call_events", "campaigns", "tracking_numbers", "destinations"} <= set(first.table_names())
    CallStore(first).create_call(new_call("keep", 0))
    first.conn.close()

    second = open_database(path)
    try:
        rows = second.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [r[0] for r in rows] == [v for v, _d, _s in MIGRATIONS]
        assert migrate(second) == len(MIGRATIONS)
        assert second.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
        assert CallStore(second).count() == 1  # data survived reopening
    finally:
        second.conn.close()


def test_migration_versions_are_increasing() -> None:
    versions = [v for v, _d, _s in MIGRATIONS]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_wal_and_foreign_keys_on_file_db(db: sqlite_utils.Database) -> None:
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_memory_database_opens() -> None:
    db = open_database(":memory:")
    try:
        assert schema_version(db) == len(MIGRATIONS)
    finally:
        db.conn.close()


# --- call records -----------------------------------------------------------------------------------


def test_create_update_finish_and_read_back(store: CallStore) -> None:
    store.create_call(new_call("c1", 0, caller_number="15551230000", dialed_number="15550100001", trunk="carrier"))
    assert store.call_id_for_channel("in-c1") == "c1"
    assert store.call_id_for_channel("nope") is None
    store.update_call("c1", state="answered", campaign="spring", decision="proceed",
                      decision_reasons=["tracking number of campaign spring"], answered_at=t(0.5))
    store.add_event("c1", "decision", {"action": "proceed"}, at=t(0.4))
    store.add_leg("c1", "out-1", "outbound", destination="desk", dial_string="PJSIP/dest-desk", created_at=t(2))
    store.add_leg("c1", "out-2", "outbound", destination="mobile", dial_string="PJSIP/1@trunk-x", created_at=t(3))
    store.update_leg("out-1", dial_status="NOANSWER", ended_at=t(2.5))
    store.update_call("c1", state="bridged", destination="mobile", destination_answered_at=t(7.5), bridged_at=t(7.6))
    store.add_event("c1", "bridged")
    store.finish_call("c1", disposition="completed", ended_at=t(37.6), hangup_cause=16,
                      hangup_cause_text="Normal Clearing", hangup_side="caller")

    call = store.get_call("c1")
    assert call is not None
    assert call["state"] == "ended" and call["disposition"] == "completed"
    assert call["decision_reasons"] == ["tracking number of campaign spring"]  # JSON decoded
    assert (call["hangup_cause"], call["hangup_side"], call["end_observed"]) == (16, "caller", "live")
    assert call["ring_seconds"] == 5.5      # first outbound leg (t=2) -> destination answer (t=7.5)
    assert call["talk_seconds"] == 30.0     # bridged (t=7.6) -> ended (t=37.6)
    assert call["total_seconds"] == 37.6    # arrived -> ended
    assert [leg["channel_id"] for leg in call["legs"]] == ["in-c1", "out-1", "out-2"]
    assert [leg["role"] for leg in call["legs"]] == ["inbound", "outbound", "outbound"]
    assert call["legs"][1]["dial_status"] == "NOANSWER"
    # events in insertion order (ids), not by timestamp
    assert [e["kind"] for e in call["events"]] == ["arrived", "decision", "bridged", "ended"]
    assert call["events"][0]["data"] == {"channel": "in-c1"}
    assert call["events"][1]["data"] == {"action": "proceed"}
    assert call["events"][2]["data"] is None
    assert call["events"][3]["data"] == {"disposition": "completed", "cause": 16, "side": "caller", "observed": "live"}
    assert store.get_call("missing") is None


def test_ring_seconds_until_end_when_never_answered(store: CallStore) -> None:
    store.create_call(new_call("c2", 0))
    store.add_leg("c2", "out", "outbound", created_at=t(1))
    store.finish_call("c2", disposition="no_answer", ended_at=t(21))
    call = store.get_call("c2")
    assert call["ring_seconds"] == 20.0 and call["talk_seconds"] is None and call["total_seconds"] == 21.0


def test_no_outbound_leg_means_no_ring_time(store: CallStore) -> None:
    store.create_call(new_call("c3", 0))
    store.finish_call("c3", disposition="rejected", ended_at=t(0.2))
    call = store.get_call("c3")
    assert call["ring_seconds"] is None and call["talk_seconds"] is None and call["total_seconds"] == 0.2


def test_finish_twice_keeps_the_first(store: CallStore) -> None:
    store.create_call(new_call("c4", 0))
    store.finish_call("c4", disposition="abandoned", ended_at=t(5), hangup_cause=16)
    store.finish_call("c4", disposition="completed", ended_at=t(9), hangup_cause=17)
    call = store.get_call("c4")
    assert (call["disposition"], call["ended_at"], call["hangup_cause"]) == ("abandoned", t(5), 16)
    assert [e["kind"] for e in call["events"]].count("ended") == 1


def test_unknown_disposition_raises_and_changes_nothing(store: CallStore) -> None:
    store.create_call(new_call("c5", 0))
    with pytest.raises(ValueError, match="disposition"):
        store.finish_call("c5", disposition="hung_up")
    call = store.get_call("c5")
    assert call["ended_at"] is None and call["disposition"] is None and call["state"] == "arrived"


def test_finish_without_ended_at_uses_now(store: CallStore) -> None:
    store.create_call(new_call("c6", 0))
    store.finish_call("c6", disposition="failed")
    call = store.get_call("c6")
    parse_time(call["ended_at"])  # valid storage format
    assert call["ended_at"] > call["arrived_at"]


# --- listing ----------------------------------------------------------------------------------------


@pytest.fixture
def seeded(store: CallStore) -> CallStore:
    rows = [
        ("a1", 10, "spring", "15550100001", "15551110000", "completed"),
        ("a2", 20, "spring", "15550100002", "15552220000", "no_answer"),
        ("a3", 30, "autumn", "15550100101", "15550100001", "busy"),
        ("a4", 40, "autumn", "15550100101", "15553330000", None),
        ("a5", 50, None, "15559999999", "15554440000", "rejected"),
    ]
    for call_id, at, campaign, dialed, caller, disposition in rows:
        store.create_call(new_call(call_id, at, dialed_number=dialed, caller_number=caller))
        if campaign:
            store.update_call(call_id, campaign=campaign)
        if disposition:
            store.finish_call(call_id, disposition=disposition, ended_at=t(at + 5))
    return store


def ids(store: CallStore, **kwargs: object) -> list[str]:
    return [c["id"] for c in store.list_calls(CallFilter(**kwargs)).calls]


def test_list_newest_first_and_filters(seeded: CallStore) -> None:
    assert ids(seeded) == ["a5", "a4", "a3", "a2", "a1"]
    assert ids(seeded, campaign="spring") == ["a2", "a1"]
    assert ids(seeded, campaign="nope") == []
    # number matches the dialed (tracking) number or the caller number
    assert ids(seeded, number="15550100001") == ["a3", "a1"]
    assert ids(seeded, number="15553330000") == ["a4"]
    assert ids(seeded, disposition="busy") == ["a3"]
    assert ids(seeded, since=t(20)) == ["a5", "a4", "a3", "a2"]  # since is inclusive
    assert ids(seeded, until=t(30)) == ["a2", "a1"]  # until is exclusive
    assert ids(seeded, since=t(20), until=t(40), campaign="autumn") == ["a3"]


def test_sql_injection_looking_values_are_data(seeded: CallStore) -> None:
    assert ids(seeded, campaign="spring' OR '1'='1") == []
    assert ids(seeded, number="1 OR 1=1") == []
    assert ids(seeded, disposition="completed'; DROP TABLE calls; --") == []
    # compared as text: "'" sorts before every timestamp, so nothing arrived before it
    assert ids(seeded, until="' OR 1=1 --") == []
    assert seeded.count() == 5
    evil = "Robert'); DROP TABLE calls;--"
    seeded.create_call(new_call("evil", 60, caller_name=evil))
    assert seeded.get_call("evil")["caller_name"] == evil
    assert seeded.count() == 6


def test_cursor_pagination_returns_each_call_once_in_order(store: CallStore) -> None:
    # 7 calls, two pairs sharing an arrival time so the id tie-break matters
    times = {"p1": 1, "p2": 2, "p3": 2, "p4": 3, "p5": 4, "p6": 4, "p7": 5}
    for call_id, at in times.items():
        store.create_call(new_call(call_id, at))
    expected = ["p7", "p6", "p5", "p4", "p3", "p2", "p1"]

    seen, cursor, pages = [], None, []
    while True:
        page = store.list_calls(CallFilter(limit=3, cursor=cursor))
        pages.append([c["id"] for c in page.calls])
        seen += pages[-1]
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(pages) < 10
    assert pages == [["p7", "p6", "p5"], ["p4", "p3", "p2"], ["p1"]]
    assert seen == expected


def test_exact_multiple_of_limit_has_no_dangling_cursor(store: CallStore) -> None:
    for i in range(6):
        store.create_call(new_call(f"m{i}", i))
    first = store.list_calls(CallFilter(limit=3))
    second = store.list_calls(CallFilter(limit=3, cursor=first.next_cursor))
    assert [c["id"] for c in second.calls] == ["m2", "m1", "m0"]
    assert second.next_cursor is None


def test_cursor_combines_with_filters(seeded: CallStore) -> None:
    page = seeded.list_calls(CallFilter(campaign="autumn", limit=1))
    assert [c["id"] for c in page.calls] == ["a4"]
    rest = seeded.list_calls(CallFilter(campaign="autumn", limit=1, cursor=page.next_cursor))
    assert [c["id"] for c in rest.calls] == ["a3"] and rest.next_cursor is None


def test_cursor_round_trip_and_malformed() -> None:
    cursor = encode_cursor(t(1), "call-1")
    assert "=" not in cursor
    assert decode_cursor(cursor) == (t(1), "call-1")
    for bad in ["", "!!!", "abc", "bm9waXBl", encode_cursor("", "x").rstrip(), "%%%%"]:
        with pytest.raises(ValueError):
            decode_cursor(bad)


def test_malformed_cursor_in_list_raises(store: CallStore) -> None:
    with pytest.raises(ValueError):
        store.list_calls(CallFilter(cursor="bm9waXBl"))  # "nopipe"


def test_open_calls_only_unfinished_with_legs(store: CallStore) -> None:
    store.create_call(new_call("o1", 2))
    store.create_call(new_call("o2", 1))
    store.create_call(new_call("done", 0))
    store.add_leg("o1", "o1-out", "outbound", created_at=t(3))
    store.finish_call("done", disposition="completed", ended_at=t(4))
    calls = store.open_calls()
    assert [c["id"] for c in calls] == ["o2", "o1"]  # oldest first
    assert sorted(leg["channel_id"] for leg in calls[1]["legs"]) == ["in-o1", "o1-out"]
    assert [leg["channel_id"] for leg in calls[0]["legs"]] == ["in-o2"]


# --- catalogue --------------------------------------------------------------------------------------


def campaign_row(name: str) -> dict[str, object]:
    return {"name": name, "title": name.title(), "destination": "desk", "greeting": None, "ring_timeout": 20,
            "fallback_destination": None, "fallback_message": None}


def test_sync_catalog_marks_removed_entries_inactive(store: CallStore, db: sqlite_utils.Database) -> None:
    dest = [{"name": "desk", "kind": "sip", "dial_string": "PJSIP/dest-desk"}]
    store.sync_catalog(dest, [campaign_row("spring"), campaign_row("autumn")],
                       [{"number": "1555", "campaign": "spring"}, {"number": "2555", "campaign": "autumn"}])
    store.sync_catalog(dest, [campaign_row("spring")], [{"number": "1555", "campaign": "spring"}])
    active = {r["name"]: r["active"] for r in db.query("SELECT name, active FROM campaigns")}
    assert active == {"spring": 1, "autumn": 0}
    numbers = {r["number"]: r["active"] for r in db.query("SELECT number, active FROM tracking_numbers")}
    assert numbers == {"1555": 1, "2555": 0}
    # coming back re-activates, and updates fields
    store.sync_catalog(dest, [campaign_row("spring"), campaign_row("autumn") | {"title": "New"}],
                       [{"number": "2555", "campaign": "autumn"}])
    rows = {r["name"]: r for r in db.query("SELECT * FROM campaigns")}
    assert rows["autumn"]["active"] == 1 and rows["autumn"]["title"] == "New"
    numbers = {r["number"]: r["active"] for r in db.query("SELECT number, active FROM tracking_numbers")}
    assert numbers == {"1555": 0, "2555": 1}
    assert [r["name"] for r in db.query("SELECT name FROM destinations")] == ["desk"]


# --- async wrapper ----------------------------------------------------------------------------------


async def test_async_store_from_event_loop(tmp_path: Path) -> None:
    store = AsyncCallStore(tmp_path / "async.db")
    assert await store.healthy() is False  # not opened yet
    await store.open()
    try:
        assert await store.healthy() is True
        loop_thread = threading.get_ident()
        await store.call("create_call", new_call("x1", 0))
        # many concurrent writes are stored in the order they were issued
        await asyncio.gather(*(store.call("add_event", "x1", f"e{i}", at=t(1)) for i in range(20)))
        call = await store.call("get_call", "x1")
        assert [e["kind"] for e in call["events"]] == ["arrived"] + [f"e{i}" for i in range(20)]
        page = await store.call("list_calls", CallFilter())
        assert [c["id"] for c in page.calls] == ["x1"]
        worker = await store._submit(threading.get_ident)
        assert worker != loop_thread  # SQLite runs off the event loop thread
    finally:
        await store.close()
