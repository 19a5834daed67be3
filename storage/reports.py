"""Reports (issue 7): calls grouped by campaign, publisher, source, medium, keyword, ad campaign, day or hour, with
their outcome figures; and each pool's use and overflow over a period.

Synchronous, parameterised SQL in the style of storage/stats.py; run it on the storage thread
(``await store.run(call_report, store.db, ...)``). Values are always bound parameters; the only SQL text that
varies is picked from fixed fragments (the group-by columns come from the ``DIMENSIONS`` whitelist).

Every query reads one range of arrival times: of ``calls_arrived`` for the figures (``calls_campaign`` when a
campaign is given), of ``calls_spam`` (spam, arrived_at) for spam_blocked. Filters on other indexed columns and the
group-by columns carry a unary ``+`` so SQLite never walks another index over all time to avoid a sort. A year of
1M calls takes a few seconds (rows are read from the table: no index covers the figures), a month a fraction.

Days and hours are computed here in Python, not by SQLite (which knows no time zones): SQLite groups the range by
UTC hour (or by a finer slice when the zone's offsets or its changes over the period are not whole hours, e.g.
Asia/Kolkata, or a transition at half past), every slice lies wholly inside one local hour, and each slice is
mapped to its local day and hour with zoneinfo, so DST changes are exact: the spring-forward day has 23 hours,
the fall-back day 25, and its repeated hour appears twice, with different offsets.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

import sqlite_utils

from storage.db import parse_time

MAX_DAYS = 366  # the longest period one report covers
FIRST_YEAR, LAST_YEAR = 1970, 9998  # local times near year 1 or 9999 would not fit a datetime
MAX_ROWS = 50_000  # a report with more groups is refused: narrow the period or group by fewer columns

# group name -> the calls column behind it ("publisher": the call's pool, mapped through the configuration)
DIMENSIONS: dict[str, str] = {"campaign": "campaign", "publisher": "pool", "source": "source", "medium": "medium",
                              "keyword": "keyword", "ad_campaign": "ad_campaign"}
TIME_GROUPS = ("day", "hour")
GROUPS: tuple[str, ...] = (*DIMENSIONS, *TIME_GROUPS)
METRICS: tuple[str, ...] = ("calls", "answered", "bridged", "spam_blocked", "avg_talk_seconds", "conversions",
                            "revenue", "payout", "margin")

# The figures of the calls a report counts (spam ones are left out in the WHERE clause unless include_spam), and
# spam_blocked from a second, small read of the spam index: every call marked spam (refused by screening before
# answer, or found spam later), whatever include_spam says. Plain aggregates, no per-row test of the spam flag.
# Revenue: a call priced by its campaign's payout rules counts its revenue (converted or not), any other call its
# conversion value. Payout and margin exist only for priced calls: their count tells null from 0.
_SUMS = ("COUNT(*), COUNT(answered_at), COUNT(bridged_at), 0, "
         "TOTAL(CASE WHEN bridged_at IS NOT NULL THEN talk_seconds END), "
         "COUNT(CASE WHEN bridged_at IS NOT NULL THEN talk_seconds END), COUNT(converted_at), "
         "TOTAL(CASE WHEN revenue IS NOT NULL THEN revenue WHEN converted_at IS NOT NULL THEN conversion_value END), "
         "TOTAL(payout), COUNT(payout), TOTAL(margin)")
_SPAM_SUMS = "0, 0, 0, COUNT(*), 0, 0, 0, 0, 0, 0, 0"
_N_SUMS = 11  # calls, answered, bridged, spam_blocked, talk total, talked, conversions, revenue, payout, priced, margin


class ReportTooLarge(ValueError):
    pass


def check_period(since: str, until: str) -> None:
    """``since`` and ``until`` are stored-form UTC times; the period is (0, MAX_DAYS] long."""
    start, end = parse_time(since), parse_time(until)
    if not (FIRST_YEAR <= start.year and end.year <= LAST_YEAR):
        raise ValueError(f"since/until: between the years {FIRST_YEAR} and {LAST_YEAR}")
    if end <= start:
        raise ValueError("until: must be after since")
    if end - start > timedelta(days=MAX_DAYS):
        raise ValueError(f"since/until: at most {MAX_DAYS} days apart")


def check_groups(groups: Iterable[str]) -> tuple[str, ...]:
    groups = tuple(groups)
    if not groups:
        raise ValueError(f"group: one or more of {', '.join(GROUPS)}")
    for name in groups:
        if name not in GROUPS:
            raise ValueError(f"group: {name[:40]!r} is not one of {', '.join(GROUPS)}")
    if len(set(groups)) != len(groups):
        raise ValueError("group: a column is named twice")
    return groups


def _where(since: str, until: str, campaign: str | None, include_test: bool, include_spam: bool,
           alias: str = "", campaigns: tuple[str, ...] | None = None) -> tuple[str, dict[str, Any]]:
    where = [f"{alias}arrived_at >= :since", f"{alias}arrived_at < :until"]
    params: dict[str, Any] = {"since": since, "until": until}
    if not include_test:
        where.append(f"+{alias}is_test = 0")  # +: the arrival index, not calls_test
    if not include_spam:
        where.append(f"+{alias}spam = 0")  # +: the arrival index, not calls_spam
    if campaign is not None:
        where.append(f"{alias}campaign = :campaign")
        params["campaign"] = campaign
    if campaigns is not None:  # a token limited to some campaigns; none sees nothing (never every call)
        names = [f":scope{i}" for i, _ in enumerate(campaigns)]
        params |= {name[1:]: value for name, value in zip(names, campaigns)}
        where.append(f"+{alias}campaign IN ({', '.join(names)})" if names else "0")
    return " AND ".join(where), params


# --- time zones ---------------------------------------------------------------------------------------------

TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]{0,30}(/[A-Za-z0-9_+-]{1,30}){0,2}$")


def load_zone(name: str) -> tzinfo:
    """An IANA time zone by name (``UTC``, ``America/New_York``); ValueError naming ``tz`` otherwise."""
    if name == "UTC":
        return timezone.utc
    if not TZ_RE.fullmatch(name):
        raise ValueError("tz: an IANA time zone name such as America/New_York")
    try:
        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, a folder such as "America" (IsADirectoryError), a bad file
        raise ValueError(f"tz: unknown time zone {name!r}") from None


def _offset(moment: datetime, zone: tzinfo) -> int:
    offset = moment.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def zone_profile(zone: tzinfo, since: str, until: str) -> tuple[int, set[int]]:
    """The UTC offsets (seconds) ``zone`` uses during [since, until), and the longest slice of a UTC hour (a
    divisor of 3600 s) that never straddles one of its local hours: it divides every offset in force and the
    position of every offset change within its UTC hour. 3600 for UTC and for zones whose offsets and changes are
    whole hours (America/New_York changes at 06:00 or 07:00 UTC); 1800 for Asia/Kolkata; 900 for Asia/Kathmandu.
    Checks every hour of the period and finds each change to the second (a year: about 9000 look-ups)."""
    if zone is timezone.utc:
        return 3600, {0}
    hour = parse_time(since).replace(minute=0, second=0, microsecond=0)
    end = parse_time(until)
    before = _offset(hour, zone)
    offsets = {before}
    unit = math.gcd(3600, before)
    while hour < end:
        after = _offset(hour + timedelta(hours=1), zone)
        if after != before:  # the change is in (hour, hour + 1 h]: find its second
            low, high = 0, 3600  # the offset at hour + low is `before`, at hour + high `after`
            while high - low > 1:
                middle = (low + high) // 2
                if _offset(hour + timedelta(seconds=middle), zone) == before:
                    low = middle
                else:
                    high = middle
            unit = math.gcd(unit, math.gcd(high % 3600, after))
            offsets.add(after)
        before = after
        hour += timedelta(hours=1)
    return unit or 3600, offsets


class _Buckets:
    """Local day and hour labels of UTC slices, memoised (each slice recurs once per group)."""

    def __init__(self, zone: tzinfo, unit: int) -> None:
        self.zone, self.unit = zone, unit
        self.seen: dict[tuple[str, int], tuple[str, str, datetime]] = {}
        self.hour_order: dict[str, datetime] = {}

    def labels(self, utc_hour: str, part: int) -> tuple[str, str]:
        key = (utc_hour, part)
        found = self.seen.get(key)
        if found is None:
            start = datetime.strptime(utc_hour, "%Y-%m-%dT%H").replace(tzinfo=timezone.utc)
            local = (start + timedelta(seconds=part * self.unit)).astimezone(self.zone)
            local_hour = local.replace(minute=0, second=0, microsecond=0)  # keeps fold: 01:00 EDT != 01:00 EST
            hour_label = local_hour.isoformat()
            found = self.seen[key] = (local.date().isoformat(), hour_label, local_hour)
            self.hour_order[hour_label] = local_hour.astimezone(timezone.utc)
        return found[0], found[1]


# --- the calls report ---------------------------------------------------------------------------------------

def call_report(db: sqlite_utils.Database, *, since: str, until: str, group: Iterable[str],
                tz: str = "UTC", campaign: str | None = None,
                include_spam: bool = False, include_test: bool = False,
                publishers: Mapping[str, str | None] | None = None,
                campaigns: Iterable[str] | None = None) -> dict[str, Any]:
    """Calls that arrived in [since, until) grouped by ``group`` (names from ``GROUPS``), with per group:

    - ``calls``, ``answered`` (answered_at set), ``bridged`` (bridged_at set), ``conversions`` (converted_at set),
      ``avg_talk_seconds`` (over bridged calls with a talk time; null when none);
    - ``revenue``: the calls' revenue where their campaign's payout rules priced them, else their conversion_value
      (whatever its currency);
    - ``payout`` and ``margin``: the sums over the priced calls, null when the group has none;
    - ``spam_blocked``: calls marked spam (refused by screening before answer, or marked spam later).

    Spam calls are left out of every figure but ``spam_blocked`` unless ``include_spam``; test calls are left out
    of everything unless ``include_test``. ``publishers`` maps a pool to its publisher (from the configuration);
    calls on no pool, or on a pool with no publisher, have publisher null; ``campaigns``, when given, limits the
    report to those campaigns' calls (a token scoped to them). ``day`` is the local date (YYYY-MM-DD) and
    ``hour`` the local hour with its offset (2026-03-08T03:00:00-04:00) in the IANA zone ``tz``. Groups with no
    calls are not listed (a group with only spam calls is, with calls 0 and its spam_blocked). Rows are sorted
    by the group columns in the order given (time in time order, null last); ``totals`` sums every row.
    Raises ValueError (ReportTooLarge past MAX_ROWS groups) for bad arguments, the message naming the argument."""
    groups = check_groups(group)
    check_period(since, until)
    zone = load_zone(tz)
    publishers = publishers or {}
    dims = [g for g in groups if g in DIMENSIONS]
    want_day, want_hour = "day" in groups, "hour" in groups
    scope = tuple(campaigns) if campaigns is not None else None
    where, params = _where(since, until, campaign, include_test, include_spam, campaigns=scope)
    spam_where, _ = _where(since, until, campaign, include_test, True, campaigns=scope)

    columns = [f"+{DIMENSIONS[d]}" for d in dims]
    buckets: _Buckets | None = None
    utc_days = False
    if want_day or want_hour:
        unit, offsets = zone_profile(zone, since, until)
        utc_days = want_day and not want_hour and offsets == {0}  # UTC days straight from the stored text
        if utc_days:
            columns.append("substr(arrived_at, 1, 10)")
        else:
            buckets = _Buckets(zone, unit)
            columns.append("substr(arrived_at, 1, 13)")
            if unit < 3600:
                columns.append("(CAST(substr(arrived_at, 15, 2) AS INTEGER) * 60"
                               " + CAST(substr(arrived_at, 18, 2) AS INTEGER)) / :unit")
                params["unit"] = unit
    n_keys = len(columns)
    group_by = f" GROUP BY {', '.join(str(i + 1) for i in range(n_keys))}"
    selected = ", ".join(columns)
    queries = [f"SELECT {selected}, {_SUMS} FROM calls WHERE {where}{group_by}",
               f"SELECT {selected}, {_SPAM_SUMS} FROM calls WHERE {spam_where} AND spam = 1{group_by}"]

    out: dict[tuple[Any, ...], list[float]] = {}
    totals = [0.0] * _N_SUMS
    for row in (row for sql in queries for row in db.execute(sql, params)):
        key: list[Any] = []
        for name, value in zip(dims, row):
            key.append(publishers.get(value) if name == "publisher" and value is not None else value)
        if want_day or want_hour:
            if utc_days:
                key.append(row[len(dims)])
            else:
                assert buckets is not None
                part = row[len(dims) + 1] if n_keys - len(dims) == 2 else 0
                day, hour = buckets.labels(row[len(dims)], part)
                if want_day:
                    key.append(day)
                if want_hour:
                    key.append(hour)
        sums = row[n_keys:]
        acc = out.get(tuple(key))
        if acc is None:
            if len(out) >= MAX_ROWS:
                raise ReportTooLarge(f"group: more than {MAX_ROWS} rows; narrow since/until or group by fewer columns")
            acc = out[tuple(key)] = [0.0] * _N_SUMS
        for i, value in enumerate(sums):
            if value:
                acc[i] += value
                totals[i] += value

    names = [g for g in groups if g in DIMENSIONS] + [g for g in TIME_GROUPS if g in groups]
    hour_order = buckets.hour_order if buckets else {}

    positions = [names.index(g) for g in groups]

    def order(item: tuple[tuple[Any, ...], list[float]]) -> tuple[Any, ...]:
        values = []
        for position in positions:
            name, value = names[position], item[0][position]
            if name == "hour" and value is not None:
                value = hour_order.get(value, value)
            values.append((value is None, value if value is not None else ""))
        return tuple(values)

    rows = []
    for key, acc in sorted(out.items(), key=order):
        row = dict(zip(names, key))
        rows.append({g: row[g] for g in groups} | _figures(acc))
    return {"since": since, "until": until, "tz": tz, "group": list(groups), "campaign": campaign,
            "include_spam": include_spam, "include_test": include_test, "rows": rows, "totals": _figures(totals)}


def _figures(acc: list[float]) -> dict[str, Any]:
    calls, answered, bridged, blocked, talk, talked, conversions, revenue, payout, priced, margin = acc
    return {"calls": int(calls), "answered": int(answered), "bridged": int(bridged), "spam_blocked": int(blocked),
            "avg_talk_seconds": round(talk / talked, 1) if talked else None, "conversions": int(conversions),
            "revenue": round(revenue, 2), "payout": round(payout, 2) if priced else None,
            "margin": round(margin, 2) if priced else None}


def csv_rows(report: dict[str, Any]) -> list[list[Any]]:
    """The report as CSV rows: a header (the group columns, then the figures), then one row per group."""
    header = [*report["group"], *METRICS]
    return [header] + [[row.get(name) for name in header] for row in report["rows"]]


# --- pools --------------------------------------------------------------------------------------------------

def pool_report(db: sqlite_utils.Database, *, since: str, until: str, current: Iterable[Mapping[str, Any]],
                include_spam: bool = False, include_test: bool = False) -> dict[str, Any]:
    """Each pool's use now and its overflow over [since, until).

    ``current`` is the pools' status as the tracking service reports it (TrackingService.pools_status: size,
    max_size, numbers by state, utilisation; extension sites: extensions_in_use, max_extension, reserved), so the
    state rules live in one place. Over the period, from the database:

    - ``calls``: calls to any of the pool's numbers (calls.pool), test calls and spam left out as in call_report;
    - ``overflow_calls``: those to a number whose role is ``overflow`` (tracking_numbers.role), and
      ``overflow_rate`` = overflow_calls / calls (null without calls). This is the overflow measure: the
      ``exhausted`` alerts (``exhausted_alerts``) are rate-limited to one per pool every 5 minutes;
    - ``leases_granted``: numbers leased to visitors (number_state_log, reassignments included).

    Pools that received calls in the period but are no longer configured are listed with ``configured`` false."""
    check_period(since, until)
    where, params = _where(since, until, None, include_test, include_spam, alias="c.")
    calls = {pool: (n, overflow) for pool, n, overflow in db.execute(
        "SELECT +c.pool, COUNT(*), COUNT(t.number) FROM calls AS c LEFT JOIN tracking_numbers AS t"
        f" ON t.number = c.dialed_number AND t.role = 'overflow' WHERE {where} AND c.pool IS NOT NULL"
        " GROUP BY 1", params)}
    period = {"since": since, "until": until}
    alerts = dict(db.execute("SELECT pool, COUNT(*) FROM pool_alerts WHERE kind = 'exhausted' AND at >= :since"
                             " AND at < :until GROUP BY pool", period).fetchall())
    leases = dict(db.execute("SELECT pool, COUNT(*) FROM number_state_log WHERE to_state = 'leased'"
                             " AND at >= :since AND at < :until GROUP BY pool", period).fetchall())
    rows = []
    seen = set()
    for status in current:
        name = status["name"]
        seen.add(name)
        n, overflow = calls.get(name, (0, 0))
        if status.get("mode") == "extension":
            capacity = max(status.get("max_extension", 0) - len(status.get("reserved") or {}), 0)
            size, leased = capacity, status.get("extensions_in_use", 0)
            utilisation = round(leased / capacity, 4) if capacity else None
        else:
            size, leased = status.get("size", 0), (status.get("numbers") or {}).get("leased", 0)
            utilisation = status.get("utilisation")
        rows.append({"pool": name, "configured": True, "campaign": status.get("campaign"),
                     "mode": status.get("mode"), "publisher": status.get("publisher"), "size": size,
                     "max_size": status.get("max_size", size), "leased_now": leased, "utilisation": utilisation,
                     "leases_granted": leases.get(name, 0), "exhausted_alerts": alerts.get(name, 0), "calls": n,
                     "overflow_calls": overflow, "overflow_rate": round(overflow / n, 4) if n else None})
    for name in sorted(set(calls) - seen):
        n, overflow = calls[name]
        rows.append({"pool": name, "configured": False, "campaign": None, "mode": None, "publisher": None,
                     "size": None, "max_size": None, "leased_now": None, "utilisation": None,
                     "leases_granted": leases.get(name, 0), "exhausted_alerts": alerts.get(name, 0), "calls": n,
                     "overflow_calls": overflow, "overflow_rate": round(overflow / n, 4) if n else None})
    total = sum(r["calls"] for r in rows)
    total_overflow = sum(r["overflow_calls"] for r in rows)
    return {"since": since, "until": until, "include_spam": include_spam, "include_test": include_test,
            "pools": rows, "totals": {"calls": total, "overflow_calls": total_overflow,
                                      "overflow_rate": round(total_overflow / total, 4) if total else None}}


