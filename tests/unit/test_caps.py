"""dialplan.caps and storage.usage: caps checks, live counts, and the per-period counts from a real SQLite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlite_utils

from ari_app.config import _Section
from ari_app.yaml_located import ConfigError, load_located
from dialplan.caps import Caps, Usage, check, read_caps
from storage.db import format_time, open_database
from storage.usage import Counts, UsageSnapshot, period_starts, snapshot

NOW = datetime(2026, 3, 14, 15, 30, tzinfo=timezone.utc)


def test_check_counts() -> None:
    caps = Caps(concurrent=1, hour=20, day=100, month=2000)
    assert check(caps, Counts()) is None
    assert check(caps, Counts(live=1)) == "cap concurrent 1/1"
    assert check(caps, Counts(hour=20, day=20, month=20)) == "cap hour 20/20"
    assert check(caps, Counts(hour=3, day=100, month=100)) == "cap day 100/100"
    assert check(caps, Counts(month=2000)) == "cap month 2000/2000"
    assert check(Caps(), Counts(live=99, hour=99, day=99, month=99, spent_day=1e6)) is None
    assert check(Caps(concurrent=0), Counts()) == "cap concurrent 0/0"  # 0: paused


def test_check_budget() -> None:
    caps = Caps(budget_day=200, budget_month=3000)
    assert check(caps, Counts(spent_day=187.5, spent_month=187.5)) is None
    assert check(caps, Counts(spent_day=187.5), cost=12.5) is None  # exactly fills it
    assert check(caps, Counts(spent_day=190), cost=12.5) == "budget day 190.00 + 12.50 of 200.00"
    assert check(caps, Counts(spent_day=200)) == "budget day 200.00 of 200.00"
    assert check(caps, Counts(spent_day=10, spent_month=2995), cost=10) == "budget month 2995.00 + 10.00 of 3000.00"


def test_live_counts_and_turns() -> None:
    usage = Usage()
    usage.start("destination", "desk")
    usage.start("destination", "desk")
    usage.start("buyer", "desk")  # kinds are separate
    assert usage.live("destination", "desk") == 2
    usage.end("destination", "desk")
    assert usage.live("destination", "desk") == 1
    usage.end("destination", "desk")
    usage.end("destination", "desk")  # an extra end never goes negative
    assert usage.live("destination", "desk") == 0
    assert usage.live("buyer", "desk") == 1
    assert [usage.turn("spring") for _ in range(3)] == [0, 1, 2]
    assert usage.turn("other") == 0


async def test_snapshot_without_database_has_live_counts_only() -> None:
    usage = Usage()
    usage.start("destination", "desk")
    snap = await usage.snapshot(["desk", "mobile"], ["acme"], NOW)
    assert snap.destination("desk") == Counts(live=1)
    assert snap.destination("mobile") == Counts()
    assert snap.buyer("acme") == Counts()
    assert snap.buyer("nobody") == Counts()


def test_period_starts() -> None:
    assert period_starts(NOW) == ("2026-03-14T15:00:00.000Z", "2026-03-14T00:00:00.000Z",
                                  "2026-03-01T00:00:00.000Z")
    eastern = timezone(timedelta(hours=-5))  # 23:30 on the 31st in New York is already April in UTC
    assert period_starts(datetime(2026, 3, 31, 23, 30, tzinfo=eastern))[2] == "2026-04-01T00:00:00.000Z"


# --- storage.usage against a real database ---------------------------------------------------------------

@pytest.fixture
def db(tmp_path: Path) -> sqlite_utils.Database:
    database = open_database(tmp_path / "ringpool.db")
    yield database
    database.conn.close()


def add_call(db: sqlite_utils.Database, call_id: str, arrived: datetime, *, buyer: str | None = None,
             bid: float | None = None, answered: bool = True) -> None:
    at = format_time(arrived)
    db.execute("INSERT INTO calls (id, inbound_channel, state, arrived_at, updated_at, buyer, winning_bid, "
               "destination_answered_at) VALUES (?, ?, 'ended', ?, ?, ?, ?, ?)",
               [call_id, f"ch-{call_id}", at, at, buyer, bid, at if answered else None])


def add_leg(db: sqlite_utils.Database, call_id: str, destination: str, answered: datetime | None) -> None:
    db.execute("INSERT INTO call_legs (channel_id, call_id, role, destination, created_at, answered_at) "
               "VALUES (?, ?, 'destination', ?, ?, ?)",
               [f"leg-{call_id}-{destination}", call_id, destination, format_time(NOW),
                format_time(answered) if answered else None])


def test_destination_counts_by_answer_time(db: sqlite_utils.Database) -> None:
    hour_start = NOW.replace(minute=0)
    legs = {
        "a": ("desk", hour_start),  # the hour's first instant counts for the hour
        "b": ("desk", hour_start - timedelta(milliseconds=1)),  # the previous hour: day only
        "c": ("desk", NOW.replace(hour=0, minute=0)),  # the day's start
        "d": ("desk", NOW.replace(day=1, hour=0, minute=0) - timedelta(seconds=1)),  # last month: not at all
        "e": ("desk", NOW.replace(day=2)),  # this month, not today
        "f": ("desk", None),  # never answered
        "g": ("mobile", NOW),
        "h": ("other", NOW),  # not asked for
    }
    for call_id, (destination, answered) in legs.items():
        add_call(db, call_id, NOW)
        add_leg(db, call_id, destination, answered)
    snap = snapshot(db, ["desk", "mobile", "idle"], [], NOW)
    assert snap.destination("desk") == Counts(hour=1, day=3, month=4)
    assert snap.destination("mobile") == Counts(hour=1, day=1, month=1)
    assert snap.destination("idle") == Counts()
    assert "other" not in snap.destinations


def test_buyer_counts_and_spend(db: sqlite_utils.Database) -> None:
    add_call(db, "1", NOW, buyer="acme", bid=12.5)
    add_call(db, "2", NOW.replace(hour=9), buyer="acme", bid=10)
    add_call(db, "3", NOW.replace(day=3), buyer="acme", bid=7.25)
    add_call(db, "4", NOW.replace(month=2), buyer="acme", bid=100)  # last month
    add_call(db, "5", NOW, buyer="acme", bid=50, answered=False)  # not answered: not counted, not paid
    add_call(db, "6", NOW, buyer="beta", bid=None)  # a buyer without a recorded bid
    add_call(db, "7", NOW)  # no buyer
    snap = snapshot(db, [], ["acme", "beta", "gamma"], NOW)
    assert snap.buyer("acme") == Counts(hour=1, day=2, month=3, spent_day=22.5, spent_month=29.75)
    assert snap.buyer("beta") == Counts(hour=1, day=1, month=1)
    assert snap.buyer("gamma") == Counts()


def test_queries_use_the_indexes(db: sqlite_utils.Database) -> None:
    """Both counts are range scans of migration 10's partial indexes, never a table scan."""
    traced: list[str] = []
    db.conn.set_trace_callback(traced.append)
    snapshot(db, ["desk", "mobile"], ["acme"], NOW)
    db.conn.set_trace_callback(None)
    plans = []
    for sql in traced:
        plans += [row[-1] for row in db.execute("EXPLAIN QUERY PLAN " + sql).fetchall()]
    text = " | ".join(plans)
    assert "call_legs_destination" in text, text
    assert "calls_buyer" in text, text
    assert "SCAN call_legs" not in text and "SCAN calls" not in text, text


async def test_usage_reads_through_the_runner_once(db: sqlite_utils.Database) -> None:
    add_call(db, "1", NOW, buyer="acme", bid=5)
    add_leg(db, "1", "desk", NOW)
    runs: list[Callable[[sqlite_utils.Database], Any]] = []

    async def run(fn: Callable[[sqlite_utils.Database], Any]) -> Any:
        runs.append(fn)
        return fn(db)

    usage = Usage(run)
    usage.start("buyer", "acme")
    snap = await usage.snapshot(["desk"], ["acme"], NOW)
    assert len(runs) == 1
    assert snap.destination("desk") == Counts(hour=1, day=1, month=1)
    assert snap.buyer("acme") == Counts(hour=1, day=1, month=1, spent_day=5, spent_month=5, live=1)
    usage.start("destination", "desk")
    assert usage.with_live(snap, ["desk"], ["acme"]).destination("desk").live == 1
    assert await Usage(run).snapshot([], [], NOW) == UsageSnapshot()
    assert len(runs) == 1  # nothing to count: no storage call


# --- configuration --------------------------------------------------------------------------------------

def caps_section(tmp_path: Path, text: str) -> _Section:
    path = tmp_path / "ringpool.yaml"
    path.write_text(text)
    return _Section(path, load_located(path), "", 1).section("caps")


def test_read_caps(tmp_path: Path) -> None:
    s = caps_section(tmp_path, "caps: {concurrent: 2, hour: 10, day: 50, month: 500, budget_day: 200,"
                               " budget_month: 3000.5}\n")
    assert read_caps(s, budgets=True) == Caps(2, 10, 50, 500, 200.0, 3000.5)
    assert read_caps(caps_section(tmp_path, "other: 1\n"), budgets=False) == Caps()


@pytest.mark.parametrize("text, budgets, line, key, message", [
    ("caps:\n  hour: -1\n", True, 2, "caps.hour", "out of range"),
    ("caps:\n  day: many\n", True, 2, "caps.day", "whole number"),
    ("caps:\n  hour: 1\n  budget_day: 5\n", False, 3, "caps.budget_day", "budgets are for buyers"),
    ("caps:\n  budget_month: -5\n", True, 2, "caps.budget_month", "amount"),
    ("caps:\n  budget_month: .nan\n", True, 2, "caps.budget_month", "amount"),
    ("caps:\n  weekly: 5\n", True, 2, "caps.weekly", "unknown key"),
])
def test_read_caps_errors(tmp_path: Path, text: str, budgets: bool, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        read_caps(caps_section(tmp_path, text), budgets=budgets)
    assert (err.value.line, err.value.key) == (line, key)
    assert message in err.value.message
