"""Reports (storage/reports.py) on a real SQLite database, and their endpoints GET /api/v1/reports/calls and
GET /api/v1/reports/pools (ari_app/admin/reports.py): group-bys, time zones across DST changes, spam and test
calls, the pool figures, validation, CSV, and the query plan (a range of the arrival index)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any, AsyncIterator

import pytest
import sqlite_utils
from aiohttp.test_utils import TestClient, TestServer

from ari_app.admin.http import AdminDeps, build_admin_app
from ari_app.config import Settings, load_settings
from ari_app.service import catalog_rows
from ari_app.tracking.service import TrackingService
from ari_app.tracking.store import TrackingStore, Visit
from storage import reports
from storage.async_store import AsyncCallStore
from storage.calls import CallStore, NewCall
from storage.db import open_database

TOKEN = "reports-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SINCE, UNTIL = "2026-05-01T00:00:00.000Z", "2026-05-02T00:00:00.000Z"

CONFIG = """\
state_dir: var
asterisk: {bundled: false}
ari: {password: unit-test-ari-password}
trunks: [{name: carrier, match: [127.0.0.1]}]
destinations: [{name: desk, host: 127.0.0.1}]
campaigns:
  - {name: spring, destination: desk, numbers: ["5550100001"]}
  - {name: autumn, destination: desk, numbers: ["5550100002"]}
inventory: ["5550100300"]
pools:
  - name: web
    campaign: spring
    numbers: ["5550100201", "5550100202"]
    max_size: 3
    min_lease: 600
    overflow_number: "5550100299"
    site_key: unit-site-key-0123456789
    publisher: acme
  - name: ads
    campaign: autumn
    numbers: ["5550100211"]
    site_key: unit-site-key-0123456789
  - name: ext
    campaign: spring
    mode: extension
    number: "5550100250"
    max_extension: 9
    reserved: {"7": flyer}
    site_key: unit-site-key-0123456789
    publisher: partner
"""

# id, arrived (UTC), campaign, pool, dialed, source, medium, keyword, ad_campaign, answered, bridged, talk s,
# conversion value (None: not converted), spam, test
CALLS: list[tuple[Any, ...]] = [
    ("a1", "2026-05-01T00:00:00.000Z", "spring", "web", "5550100201", "google", "cpc", "plumber", "brand", 1, 1, 60.0, 100.0, 0, 0),
    ("a2", "2026-05-01T00:30:00.000Z", "spring", "web", "5550100299", "google", "cpc", "plumber", "brand", 1, 1, 120.0, None, 0, 0),
    ("a3", "2026-05-01T01:10:00.000Z", "spring", "ext", "5550100250", "bing", "cpc", "=SUM(1)", None, 1, 0, None, None, 0, 0),
    ("a4", "2026-05-01T13:00:00.000Z", "spring", None, "5550100001", None, None, None, None, 0, 0, None, None, 0, 0),
    ("b1", "2026-05-01T13:05:00.000Z", "autumn", "ads", "5550100211", "facebook", "social", None, "fall", 1, 1, 30.0, 50.5, 0, 0),
    ("b2", "2026-05-01T23:59:59.999Z", "autumn", "ads", "5550100211", "facebook", "social", None, "fall", 0, 0, None, None, 1, 0),
    ("s1", "2026-05-01T14:00:00.000Z", "spring", "web", "5550100202", "google", "cpc", "plumber", "brand", 1, 1, 10.0, 999.0, 1, 0),
    ("r1", "2026-05-01T15:00:00.000Z", None, None, "5559999999", None, None, None, None, 0, 0, None, None, 0, 0),
    ("t1", "2026-05-01T16:00:00.000Z", "spring", "web", "5550100201", "google", "cpc", "plumber", "brand", 1, 1, 40.0, 10.0, 0, 1),
    ("old", "2026-04-30T23:59:59.999Z", "spring", "web", "5550100201", "google", "cpc", "plumber", "brand", 1, 1, 5.0, None, 0, 0),
    ("new", "2026-05-02T00:00:00.000Z", "spring", "web", "5550100201", "google", "cpc", "plumber", "brand", 1, 1, 5.0, None, 0, 0),
]


def add_call(db: sqlite_utils.Database, call_id: str, at: str, campaign: str | None = "spring", *,
             pool: str | None = None, dialed: str = "5550100001", source: str | None = None,
             medium: str | None = None, keyword: str | None = None, ad_campaign: str | None = None,
             answered: int = 0, bridged: int = 0, talk: float | None = None, value: float | None = None,
             spam: int = 0, test: int = 0) -> None:
    calls = CallStore(db)
    calls.create_call(NewCall(id=call_id, inbound_channel=f"chan-{call_id}", arrived_at=at, dialed_number=dialed,
                              is_test=test))
    fields: dict[str, Any] = {"campaign": campaign, "pool": pool, "source": source, "medium": medium,
                              "keyword": keyword, "ad_campaign": ad_campaign, "spam": spam,
                              "decision": "reject" if spam and not answered else "proceed"}
    if answered:
        fields["answered_at"] = at
    if bridged:
        fields |= {"bridged_at": at, "talk_seconds": talk}
    if value is not None:
        fields |= {"converted_at": at, "conversion_value": value}
    calls.update_call(call_id, **fields)


def seed(db: sqlite_utils.Database) -> None:
    for (call_id, at, campaign, pool, dialed, source, medium, keyword, ad, answered, bridged, talk, value, spam,
         test) in CALLS:
        add_call(db, call_id, at, campaign, pool=pool, dialed=dialed, source=source, medium=medium, keyword=keyword,
                 ad_campaign=ad, answered=answered, bridged=bridged, talk=talk, value=value, spam=spam, test=test)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "ringpool.yaml").write_text(CONFIG, encoding="utf-8")
    return load_settings(tmp_path / "ringpool.yaml")


@pytest.fixture
def db(settings: Settings) -> sqlite_utils.Database:
    database = open_database(settings.database)
    CallStore(database).sync_catalog(*catalog_rows(settings))
    TrackingStore(database, settings.pools).sync(settings.pools, settings.inventory, "2026-04-01T00:00:00.000Z")
    seed(database)
    return database


def report(db: sqlite_utils.Database, *group: str, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("since", SINCE)
    kwargs.setdefault("until", UNTIL)
    kwargs.setdefault("publishers", {"web": "acme", "ext": "partner", "ads": None})
    return reports.call_report(db, group=group, **kwargs)


def by(rows: list[dict[str, Any]], *names: str) -> dict[Any, dict[str, Any]]:
    return {row[names[0]] if len(names) == 1 else tuple(row[n] for n in names): row for row in rows}


def figures(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[m] for m in reports.METRICS)


# --- group-bys -------------------------------------------------------------------------------------------------

def test_by_campaign_every_figure(db: sqlite_utils.Database) -> None:
    result = report(db, "campaign")
    rows = by(result["rows"], "campaign")
    assert list(rows) == ["autumn", "spring", None]  # sorted, null last; old/new are outside [since, until)
    # calls, answered, bridged, spam_blocked, avg talk (bridged), conversions, revenue, payout, margin
    assert figures(rows["spring"]) == (4, 3, 2, 1, 90.0, 1, 100.0, None, None)  # s1 (spam) and t1 (test) left out
    assert figures(rows["autumn"]) == (1, 1, 1, 1, 30.0, 1, 50.5, None, None)  # b2 is spam: only in spam_blocked
    assert figures(rows[None]) == (1, 0, 0, 0, None, 0, 0, None, None)
    assert figures(result["totals"]) == (6, 4, 3, 2, 70.0, 2, 150.5, None, None)
    assert result["group"] == ["campaign"] and result["tz"] == "UTC" and result["include_spam"] is False


def test_by_publisher_through_the_pools_mapping(db: sqlite_utils.Database) -> None:
    rows = by(report(db, "publisher")["rows"], "publisher")
    assert list(rows) == ["acme", "partner", None]
    assert rows["acme"]["calls"] == 2 and rows["partner"]["calls"] == 1
    assert rows[None]["calls"] == 3  # no pool (a4, r1) or a pool with no publisher (b1)
    assert rows["acme"]["spam_blocked"] == 1
    # without a mapping every call is on no publisher
    assert [r["publisher"] for r in report(db, "publisher", publishers={})["rows"]] == [None]


def test_by_source_medium_keyword_and_ad_campaign(db: sqlite_utils.Database) -> None:
    rows = by(report(db, "source", "medium")["rows"], "source", "medium")
    assert {k: v["calls"] for k, v in rows.items()} == {
        ("bing", "cpc"): 1, ("facebook", "social"): 1, ("google", "cpc"): 2, (None, None): 2}
    assert rows[("facebook", "social")]["spam_blocked"] == 1
    rows = by(report(db, "keyword")["rows"], "keyword")
    assert list(rows) == ["=SUM(1)", "plumber", None] and rows["plumber"]["revenue"] == 100.0
    rows = by(report(db, "ad_campaign", "campaign")["rows"], "ad_campaign", "campaign")
    assert list(rows) == [("brand", "spring"), ("fall", "autumn"), (None, "spring"), (None, None)]
    # the columns come in the order asked for, then the figures
    assert list(report(db, "medium", "campaign")["rows"][0])[:3] == ["medium", "campaign", "calls"]


def test_by_day_and_hour_in_utc(db: sqlite_utils.Database) -> None:
    day = report(db, "day")["rows"]
    assert [(r["day"], r["calls"], r["spam_blocked"]) for r in day] == [("2026-05-01", 6, 2)]
    hours = report(db, "hour")["rows"]
    assert [(r["hour"], r["calls"]) for r in hours] == [
        ("2026-05-01T00:00:00+00:00", 2), ("2026-05-01T01:00:00+00:00", 1), ("2026-05-01T13:00:00+00:00", 2),
        ("2026-05-01T14:00:00+00:00", 0), ("2026-05-01T15:00:00+00:00", 1), ("2026-05-01T23:00:00+00:00", 0)]
    # a spam-only bucket is listed, with its spam_blocked (14:00, 23:00)
    assert by(hours, "hour")["2026-05-01T14:00:00+00:00"]["spam_blocked"] == 1
    rows = report(db, "campaign", "day", "hour", since="2026-04-30T00:00:00.000Z",
                  until="2026-05-03T00:00:00.000Z")["rows"]
    assert [(r["campaign"], r["day"], r["hour"][11:13]) for r in rows][:3] == [
        ("autumn", "2026-05-01", "13"), ("autumn", "2026-05-01", "23"), ("spring", "2026-04-30", "23")]
    assert list(rows[0])[:3] == ["campaign", "day", "hour"]


def test_time_first_when_asked_first(db: sqlite_utils.Database) -> None:
    rows = report(db, "hour", "campaign")["rows"]
    assert [(r["hour"][11:13], r["campaign"]) for r in rows][:4] == [
        ("00", "spring"), ("01", "spring"), ("13", "autumn"), ("13", "spring")]


# --- time zones ----------------------------------------------------------------------------------------------

def dst_db(tmp_path: Path, moments: list[str]) -> sqlite_utils.Database:
    database = open_database(tmp_path / "dst.db")
    for i, at in enumerate(moments):
        add_call(database, f"c{i}", at, answered=1, bridged=1, talk=10.0 * (i + 1))
    return database


def test_new_york_fall_back_day_has_25_hours_and_the_repeated_hour_twice(tmp_path: Path) -> None:
    # 2026-11-01: 02:00 EDT (06:00 UTC) becomes 01:00 EST
    database = dst_db(tmp_path, [
        "2026-11-01T03:59:59.999Z",  # 23:59:59 EDT on Oct 31
        "2026-11-01T04:00:00.000Z",  # 00:00 EDT Nov 1
        "2026-11-01T05:30:00.000Z",  # 01:30 EDT
        "2026-11-01T06:30:00.000Z",  # 01:30 EST (the second 01:30)
        "2026-11-01T06:45:00.000Z",  # 01:45 EST
        "2026-11-02T04:59:59.999Z",  # 23:59:59 EST Nov 1
        "2026-11-02T05:00:00.000Z",  # 00:00 EST Nov 2
    ])
    kwargs: dict[str, Any] = dict(since="2026-10-31T00:00:00.000Z", until="2026-11-03T00:00:00.000Z",
                                  tz="America/New_York")
    days = report(database, "day", **kwargs)["rows"]
    assert [(r["day"], r["calls"]) for r in days] == [("2026-10-31", 1), ("2026-11-01", 5), ("2026-11-02", 1)]
    hours = report(database, "hour", **kwargs)["rows"]
    assert [(r["hour"], r["calls"]) for r in hours] == [
        ("2026-10-31T23:00:00-04:00", 1), ("2026-11-01T00:00:00-04:00", 1), ("2026-11-01T01:00:00-04:00", 1),
        ("2026-11-01T01:00:00-05:00", 2), ("2026-11-01T23:00:00-05:00", 1), ("2026-11-02T00:00:00-05:00", 1)]
    # the same calls in UTC days
    utc = report(database, "day", since=kwargs["since"], until=kwargs["until"])["rows"]
    assert [(r["day"], r["calls"]) for r in utc] == [("2026-11-01", 5), ("2026-11-02", 2)]


def test_new_york_spring_forward_day_has_23_hours(tmp_path: Path) -> None:
    # 2026-03-08: 02:00 EST (07:00 UTC) becomes 03:00 EDT
    database = dst_db(tmp_path, [
        "2026-03-08T04:59:59.999Z",  # 23:59:59 EST Mar 7
        "2026-03-08T05:00:00.000Z",  # 00:00 EST Mar 8
        "2026-03-08T06:59:59.999Z",  # 01:59:59 EST
        "2026-03-08T07:00:00.000Z",  # 03:00 EDT
        "2026-03-09T03:59:59.999Z",  # 23:59:59 EDT Mar 8
        "2026-03-09T04:00:00.000Z",  # 00:00 EDT Mar 9
    ])
    kwargs: dict[str, Any] = dict(since="2026-03-07T00:00:00.000Z", until="2026-03-10T00:00:00.000Z",
                                  tz="America/New_York")
    days = report(database, "day", **kwargs)["rows"]
    assert [(r["day"], r["calls"]) for r in days] == [("2026-03-07", 1), ("2026-03-08", 4), ("2026-03-09", 1)]
    hours = [(r["hour"], r["calls"]) for r in report(database, "day", "hour", **kwargs)["rows"]]
    assert ("2026-03-08T01:00:00-05:00", 1) in hours and ("2026-03-08T03:00:00-04:00", 1) in hours
    assert not any(h.startswith("2026-03-08T02") for h, _ in hours)  # there is no 02:00 that day
    assert by(report(database, "day", **kwargs)["rows"], "day")["2026-03-08"]["avg_talk_seconds"] == 35.0


def test_half_hour_zones_and_changes(tmp_path: Path) -> None:
    database = dst_db(tmp_path, ["2026-01-01T18:29:59.999Z", "2026-01-01T18:30:00.000Z"])  # 23:59:59 / 00:00 IST
    kwargs: dict[str, Any] = dict(since="2026-01-01T00:00:00.000Z", until="2026-01-03T00:00:00.000Z",
                                  tz="Asia/Kolkata")
    assert [(r["day"], r["calls"]) for r in report(database, "day", **kwargs)["rows"]] == [
        ("2026-01-01", 1), ("2026-01-02", 1)]
    assert [r["hour"] for r in report(database, "hour", **kwargs)["rows"]] == [
        "2026-01-01T23:00:00+05:30", "2026-01-02T00:00:00+05:30"]
    zone = reports.load_zone
    year = ("2026-01-01T00:00:00.000Z", "2027-01-01T00:00:00.000Z")
    assert reports.zone_profile(zone("UTC"), *year) == (3600, {0})
    assert reports.zone_profile(zone("America/New_York"), *year) == (3600, {-18000, -14400})
    assert reports.zone_profile(zone("Asia/Kolkata"), *year)[0] == 1800
    assert reports.zone_profile(zone("Asia/Kathmandu"), *year)[0] == 900
    assert reports.zone_profile(zone("Australia/Lord_Howe"), *year)[0] == 1800  # a 30-minute DST shift


# --- spam, test calls, campaigns ---------------------------------------------------------------------------------

def test_spam_is_left_out_of_every_figure_but_spam_blocked_unless_included(db: sqlite_utils.Database) -> None:
    without = report(db, "campaign")
    with_spam = report(db, "campaign", include_spam=True)
    assert figures(with_spam["totals"]) == (8, 5, 4, 2, 55.0, 3, 1149.5, None, None)
    assert with_spam["totals"]["spam_blocked"] == without["totals"]["spam_blocked"] == 2
    assert by(with_spam["rows"], "campaign")["spring"]["revenue"] == 1099.0 and with_spam["include_spam"] is True


def test_test_calls_are_left_out_unless_included(db: sqlite_utils.Database) -> None:
    assert report(db, "campaign")["totals"]["calls"] == 6
    included = report(db, "campaign", include_test=True)
    assert included["totals"]["calls"] == 7 and by(included["rows"], "campaign")["spring"]["conversions"] == 2
    assert report(db, "campaign", include_test=True, include_spam=True)["totals"]["calls"] == 9


# --- revenue, payout and margin ------------------------------------------------------------------------------------

def test_priced_calls_count_their_revenue_payout_and_margin(db: sqlite_utils.Database) -> None:
    """A call priced by payout rules counts its revenue (converted or not) instead of its conversion value; payout
    and margin sum the priced calls only, so a group with none has null, not 0."""
    calls = CallStore(db)
    calls.update_call("a1", revenue=20.0, payout=7.5, margin=12.5)  # converted for 100: the rules' 20 counts
    calls.update_call("a2", revenue=20.0, payout=5.0, margin=15.0)  # never converted, still earns
    calls.update_call("a3", revenue=0.0, payout=0.0, margin=0.0)  # did not qualify: priced at 0
    calls.update_call("a4", revenue=5.0, payout=8.0, margin=-3.0)  # a margin can be negative
    calls.update_call("s1", revenue=0.0, payout=0.0, margin=0.0)  # spam: left out unless include_spam
    result = report(db, "campaign")
    rows = by(result["rows"], "campaign")
    money = ("revenue", "payout", "margin")
    assert tuple(rows["spring"][m] for m in money) == (45.0, 20.5, 24.5)
    assert tuple(rows["autumn"][m] for m in money) == (50.5, None, None)  # no rules: the conversion value
    assert tuple(result["totals"][m] for m in money) == (95.5, 20.5, 24.5)
    by_keyword = by(report(db, "keyword")["rows"], "keyword")
    assert (by_keyword["=SUM(1)"]["payout"], by_keyword["=SUM(1)"]["margin"]) == (0.0, 0.0)  # priced at 0 is 0
    spam_included = report(db, "campaign", include_spam=True)
    assert by(spam_included["rows"], "campaign")["spring"]["revenue"] == 45.0  # s1's 999 value is priced at 0
    assert spam_included["totals"]["payout"] == 20.5


def test_campaign_filter_and_scope(db: sqlite_utils.Database) -> None:
    only = report(db, "source", campaign="autumn")
    assert only["campaign"] == "autumn" and [r["source"] for r in only["rows"]] == ["facebook"]
    assert only["rows"][0]["spam_blocked"] == 1
    assert report(db, "campaign", campaigns=("autumn", "spring"))["totals"]["calls"] == 5
    assert report(db, "campaign", campaigns=())["rows"] == []  # a scope of nothing sees nothing
    assert report(db, "campaign", campaign="spring", campaigns=("autumn",))["rows"] == []


def test_argument_checks(db: sqlite_utils.Database) -> None:
    for kwargs, message in [
        (dict(group=()), "group:"), (dict(group=("campaign", "campaign")), "group: a column is named twice"),
        (dict(group=("pool",)), "group: 'pool'"), (dict(until=SINCE), "until: must be after since"),
        (dict(until="2027-05-03T00:00:00.000Z"), "since/until: at most 366 days"),
        (dict(since="0001-01-01T00:00:00.000Z", until="0001-01-02T00:00:00.000Z"), "since/until: between"),
        (dict(tz="Mars/Olympus"), "tz: unknown"), (dict(tz="America"), "tz: unknown"),
        (dict(tz="../etc/passwd"), "tz: an IANA"),
    ]:
        args = {"group": ("campaign",), "since": SINCE, "until": UNTIL} | kwargs
        with pytest.raises(ValueError, match=re.escape(message)):
            reports.call_report(db, **args)
    # exactly 366 days is allowed
    assert reports.call_report(db, group=["day"], since="2026-01-01T00:00:00.000Z",
                               until="2027-01-02T00:00:00.000Z")["totals"]["calls"] == 8


def test_too_many_rows_is_refused(db: sqlite_utils.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "MAX_ROWS", 2)
    with pytest.raises(reports.ReportTooLarge, match="group: more than 2 rows"):
        report(db, "hour")
    assert len(report(db, "campaign", campaign="spring")["rows"]) == 1


def test_csv_rows() -> None:
    rows = reports.csv_rows({"group": ["campaign", "day"], "rows": [
        {"campaign": "spring", "day": "2026-05-01", "calls": 3, "answered": 2, "bridged": 1, "spam_blocked": 0,
         "avg_talk_seconds": None, "conversions": 0, "revenue": 0.0, "payout": None, "margin": None}]})
    assert rows == [["campaign", "day", *reports.METRICS],
                    ["spring", "2026-05-01", 3, 2, 1, 0, None, 0, 0.0, None, None]]


# --- the query plan -----------------------------------------------------------------------------------------------

def plans(db: sqlite_utils.Database, **kwargs: Any) -> list[str]:
    """The plan of every statement the report ran on calls (the trace has the parameters filled in)."""
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        reports.call_report(db, since=SINCE, until=UNTIL, **kwargs)
    finally:
        db.conn.set_trace_callback(None)
    selects = [s for s in statements if s.startswith("SELECT") and "FROM calls" in s]
    assert len(selects) == 2, statements
    return [" / ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + s)) for s in selects]


@pytest.mark.parametrize("group", [["campaign"], ["publisher", "source"], ["keyword", "day"], ["hour"]])
def test_the_report_reads_a_range_of_the_arrival_index(db: sqlite_utils.Database, group: list[str]) -> None:
    figures_plan, spam_plan = plans(db, group=group, tz="America/New_York")
    assert figures_plan.startswith("SEARCH calls USING INDEX calls_arrived (arrived_at>? AND arrived_at<?)"), \
        figures_plan
    assert spam_plan.startswith("SEARCH calls USING INDEX calls_spam (spam=? AND arrived_at>? AND arrived_at<?)"), \
        spam_plan
    figures_plan, _ = plans(db, group=group, include_spam=True, include_test=True)
    assert "calls_arrived (arrived_at>? AND arrived_at<?)" in figures_plan
    for plan in plans(db, group=group, campaign="spring"):  # the campaign's own arrival range
        assert re.match(r"SEARCH calls USING INDEX calls_(campaign|spam|arrived) \(.*arrived_at>\? AND arrived_at<\?\)",
                        plan), plan
        assert "SCAN calls" not in plan


def test_the_pool_report_reads_a_range_of_the_arrival_index(db: sqlite_utils.Database) -> None:
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    try:
        reports.pool_report(db, since=SINCE, until=UNTIL, current=[])
    finally:
        db.conn.set_trace_callback(None)
    select = next(s for s in statements if "FROM calls" in s)
    plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + select)]
    assert plan[0] == "SEARCH c USING INDEX calls_arrived (arrived_at>? AND arrived_at<?)", plan
    assert plan[1].startswith("SEARCH t USING INDEX sqlite_autoindex_tracking_numbers_1 (number=?)"), plan


# --- pools ----------------------------------------------------------------------------------------------------------

def test_pool_utilisation_and_overflow(db: sqlite_utils.Database, settings: Settings) -> None:
    tracking = TrackingStore(db, settings.pools)
    web, ext = settings.pools["web"], settings.pools["ext"]
    at = "2026-05-01T10:00:00.000Z"
    for i in range(5):  # two idle numbers, one grown from the inventory, then the overflow number (one alert)
        lease, _ = tracking.visit(web, Visit(), at, token=None, new_token=f"token-{i}", new_session_id=f"s{i}")
        assert lease.overflow == (i >= 3)
    tracking.visit(ext, Visit(), at, token=None, new_token="ext-token", new_session_id="e1")
    # a call on a pool that is no longer configured
    add_call(db, "gone", "2026-05-01T11:00:00.000Z", pool="retired-pool", dialed="5550100400")
    current = [tracking.pool_status(pool) for pool in settings.pools.values()]
    result = reports.pool_report(db, since=SINCE, until=UNTIL, current=current)
    pools = by(result["pools"], "pool")
    assert list(pools) == ["web", "ads", "ext", "retired-pool"]
    web_row = pools["web"]
    assert (web_row["size"], web_row["max_size"], web_row["leased_now"], web_row["utilisation"]) == (3, 3, 3, 1.0)
    assert (web_row["leases_granted"], web_row["exhausted_alerts"]) == (3, 1)
    # a1 on a pool number, a2 on the overflow number; s1 (spam) and t1 (test) are left out
    assert (web_row["calls"], web_row["overflow_calls"], web_row["overflow_rate"]) == (2, 1, 0.5)
    assert web_row["publisher"] == "acme" and web_row["configured"] is True
    assert (pools["ads"]["calls"], pools["ads"]["overflow_rate"], pools["ads"]["utilisation"]) == (1, 0.0, 0.0)
    ext_row = pools["ext"]
    assert (ext_row["mode"], ext_row["size"], ext_row["leased_now"], ext_row["utilisation"]) == (
        "extension", 8, 1, 0.125)  # extensions 1-9 less the reserved 7
    assert pools["retired-pool"]["configured"] is False and pools["retired-pool"]["calls"] == 1
    assert result["totals"] == {"calls": 5, "overflow_calls": 1, "overflow_rate": 0.2}
    everything = reports.pool_report(db, since=SINCE, until=UNTIL, current=current, include_spam=True,
                                      include_test=True)
    assert by(everything["pools"], "pool")["web"]["calls"] == 4
    # another period: nothing happened, the state now is the same
    earlier = by(reports.pool_report(db, since="2026-04-01T00:00:00.000Z", until="2026-04-02T00:00:00.000Z",
                                     current=current)["pools"], "pool")["web"]
    assert (earlier["calls"], earlier["overflow_rate"], earlier["leases_granted"], earlier["leased_now"]) == (
        0, None, 0, 3)


# --- the API ------------------------------------------------------------------------------------------------------

@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    store = AsyncCallStore(settings.database)
    await store.open()
    await store.call("sync_catalog", *catalog_rows(settings))
    tracking = TrackingService(settings, store)
    await tracking.start()
    await store.run(seed, store.db)

    async def status() -> dict[str, Any]:
        return {"ari_connected": True, "database_ok": True}

    client = TestClient(TestServer(build_admin_app(AdminDeps(store=store, token=TOKEN, status=status,
                                                             tracking=tracking))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await tracking.stop()
        await store.close()


PERIOD = {"since": "2026-05-01T00:00:00Z", "until": "2026-05-02T00:00:00Z"}


async def test_calls_report_as_json(client: TestClient) -> None:
    resp = await client.get("/api/v1/reports/calls", headers=AUTH,
                            params={"group": "publisher,day", "tz": "America/New_York", **PERIOD})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["tz"] == "America/New_York" and body["group"] == ["publisher", "day"]
    rows = by(body["rows"], "publisher", "day")
    # 00:00 and 00:30 UTC are still April 30 in New York; the publishers come from the configuration
    assert rows[("acme", "2026-04-30")]["calls"] == 2 and rows[("partner", "2026-04-30")]["calls"] == 1
    assert body["totals"]["calls"] == 6 and body["totals"]["payout"] is None


async def test_calls_report_as_csv(client: TestClient) -> None:
    resp = await client.get("/api/v1/reports/calls", headers=AUTH,
                            params={"group": "keyword", "format": "csv", "include_spam": "true", **PERIOD})
    assert resp.status == 200 and resp.content_type == "text/csv" and resp.charset == "utf-8"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="ringpool-report-')
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert rows[0] == ["keyword", *reports.METRICS]
    assert rows[1] == ["'=SUM(1)", "1", "1", "0", "0", "", "0", "0.0", "", ""]  # a formula is never run
    assert rows[2][:2] == ["plumber", "3"] and rows[3][:2] == ["", "4"]  # spam included: b2 has no keyword
    assert len(rows) == 4


async def test_pools_report(client: TestClient) -> None:
    resp = await client.get("/api/v1/reports/pools", headers=AUTH, params=PERIOD)
    assert resp.status == 200, await resp.text()
    pools = by((await resp.json())["pools"], "pool")
    assert (pools["web"]["calls"], pools["web"]["overflow_calls"], pools["web"]["size"]) == (2, 1, 2)
    assert pools["ext"]["publisher"] == "partner"


@pytest.mark.parametrize(("path", "params", "message"), [
    ("calls", {"since": PERIOD["since"], "until": PERIOD["until"]}, "group: required"),
    ("calls", {"group": "day", "until": PERIOD["until"]}, "since: required"),
    ("calls", {"group": "day", "since": PERIOD["since"]}, "until: required"),
    ("calls", {"group": "day,pool", **PERIOD}, "group: 'pool' is not one of"),
    ("calls", {"group": "day,day", **PERIOD}, "group: a column is named twice"),
    ("calls", {"group": "", **PERIOD}, "group: ''"),
    ("calls", {"group": "day", "since": "2026-05-01", "until": PERIOD["until"]}, "since: expected a valid UTC time"),
    ("calls", {"group": "day", "since": "2026-02-30T00:00:00Z", "until": PERIOD["until"]}, "since: expected"),
    ("calls", {"group": "day", "since": PERIOD["until"], "until": PERIOD["since"]}, "until: must be after since"),
    ("calls", {"group": "day", "since": "2025-01-01T00:00:00Z", "until": "2026-05-01T00:00:00Z"},
     "since/until: at most 366 days apart"),
    ("calls", {"group": "day", "tz": "Nowhere/Land", **PERIOD}, "tz: unknown time zone"),
    ("calls", {"group": "day", "tz": "America/../../etc", **PERIOD}, "tz: an IANA time zone name"),
    ("calls", {"group": "day", "campaign": "Not A Name", **PERIOD}, "campaign: expected a campaign name"),
    ("calls", {"group": "day", "include_spam": "yes", **PERIOD}, "include_spam: true or false"),
    ("calls", {"group": "day", "include_test": "1", **PERIOD}, "include_test: true or false"),
    ("calls", {"group": "day", "format": "xml", **PERIOD}, "format: json or csv"),
    ("calls", {"group": "day", "spam": "false", **PERIOD}, "unknown query parameter(s): spam"),
    ("calls", [("group", "day"), ("group", "campaign"), *PERIOD.items()], "group: given more than once"),
    ("pools", {"since": PERIOD["since"]}, "until: required"),
    ("pools", {"group": "day", **PERIOD}, "unknown query parameter(s): group"),
    ("pools", {"since": "2026-05-01T00:00:00Z", "until": "2027-05-03T00:00:00Z"}, "since/until: at most 366 days"),
    ("pools", {"include_test": "maybe", **PERIOD}, "include_test: true or false"),
])
async def test_validation_names_the_parameter(client: TestClient, path: str, params: Any, message: str) -> None:
    resp = await client.get(f"/api/v1/reports/{path}", headers=AUTH, params=params)
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(message)


async def test_too_many_rows_is_a_400(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reports, "MAX_ROWS", 1)
    resp = await client.get("/api/v1/reports/calls", headers=AUTH, params={"group": "campaign", **PERIOD})
    assert resp.status == 400 and (await resp.json())["error"].startswith("group: more than 1 rows")


async def test_reports_need_the_token(client: TestClient) -> None:
    for path in ("/api/v1/reports/calls", "/api/v1/reports/pools"):
        assert (await client.get(path, params={"group": "day", **PERIOD})).status == 401


# --- the documented response shapes, on real rows -----------------------------------------------------------------

def test_reports_with_rows_conform_to_the_openapi_document(tmp_path: Path) -> None:
    """The schemathesis run rarely hits the seeded day; these requests do, and are validated the same way."""
    pytest.importorskip("schemathesis")
    from tests.unit.test_api_schemathesis import AUTH as LIVE_AUTH, CHECKS, LiveServer, schema

    server = LiveServer(tmp_path)
    server.start()
    try:
        day = {"since": "2026-11-22T00:00:00Z", "until": "2026-11-23T00:00:00Z"}
        for query in ({"group": "campaign,publisher,source,medium,keyword,ad_campaign,day,hour", **day},
                      {"group": "hour", "tz": "Asia/Kolkata", "include_spam": "true", "include_test": "true", **day},
                      {"group": "campaign", "format": "csv", **day}):
            response = schema["/api/v1/reports/calls"]["GET"].Case(query=query).call_and_validate(
                base_url=server.url, headers=LIVE_AUTH, checks=CHECKS)
            assert response.status_code == 200
            if "format" not in query:
                assert response.json()["rows"] and response.json()["totals"]["calls"] >= 6
        response = schema["/api/v1/reports/pools"]["GET"].Case(query=day).call_and_validate(
            base_url=server.url, headers=LIVE_AUTH, checks=CHECKS)
        assert response.status_code == 200 and {p["pool"] for p in response.json()["pools"]} >= {"web", "ext"}
    finally:
        server.stop()
