"""How much a destination or a buyer has taken this hour, day and month (UTC): what routing caps compare to.

Read from the call records, so the counts survive a restart and agree with reports. One query per kind for all
of a decision's candidates (the planner asks once per call, on the storage thread), each a range scan of the
indexes migration 10 adds: call_legs (destination, answered_at) and calls (buyer, arrived_at).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import sqlite_utils

from storage.db import format_time


@dataclass(frozen=True)
class Counts:
    """Calls answered since the start of the current hour, day and month, and what they cost (buyers:
    the sum of their winning bids). ``live``: calls up right now, filled in from memory by dialplan.caps.Usage."""

    hour: int = 0
    day: int = 0
    month: int = 0
    spent_day: float = 0.0
    spent_month: float = 0.0
    live: int = 0


NONE = Counts()


@dataclass(frozen=True)
class UsageSnapshot:
    """The counts of every candidate of one routing decision, taken at once so the planner stays pure."""

    destinations: Mapping[str, Counts] = field(default_factory=dict)
    buyers: Mapping[str, Counts] = field(default_factory=dict)

    def destination(self, name: str) -> Counts:
        return self.destinations.get(name, NONE)

    def buyer(self, name: str) -> Counts:
        return self.buyers.get(name, NONE)


def period_starts(now: datetime) -> tuple[str, str, str]:
    """The start of ``now``'s UTC hour, day and month, in the stored time form (which compares as text)."""
    utc = now.astimezone(timezone.utc)
    hour = utc.replace(minute=0, second=0, microsecond=0)
    day = hour.replace(hour=0)
    month = day.replace(day=1)
    return format_time(hour), format_time(day), format_time(month)


def snapshot(db: sqlite_utils.Database, destinations: Collection[str], buyers: Collection[str],
             now: datetime) -> UsageSnapshot:
    """Answered legs per destination (by answer time) and answered calls per buyer (by arrival time, the
    indexed column; a call counts once its destination answered) with their winning bids."""
    hour, day, month = period_starts(now)
    return UsageSnapshot(destinations=_destination_counts(db, sorted(set(destinations)), hour, day, month),
                         buyers=_buyer_counts(db, sorted(set(buyers)), hour, day, month))


def _destination_counts(db: sqlite_utils.Database, names: list[str], hour: str, day: str,
                        month: str) -> dict[str, Counts]:
    if not names:
        return {}
    rows = db.execute(
        "SELECT destination, SUM(answered_at >= ?), SUM(answered_at >= ?), COUNT(*) FROM call_legs "
        f"WHERE destination IN ({', '.join('?' * len(names))}) AND answered_at >= ? GROUP BY destination",
        [hour, day, *names, month]).fetchall()
    return {name: Counts(hour=h, day=d, month=m) for name, h, d, m in rows}


def _buyer_counts(db: sqlite_utils.Database, names: list[str], hour: str, day: str,
                  month: str) -> dict[str, Counts]:
    if not names:
        return {}
    rows = db.execute(
        "SELECT buyer, SUM(arrived_at >= ?), SUM(arrived_at >= ?), COUNT(*), "
        "TOTAL(CASE WHEN arrived_at >= ? THEN winning_bid END), TOTAL(winning_bid) FROM calls "
        f"WHERE buyer IN ({', '.join('?' * len(names))}) AND arrived_at >= ? "
        "AND destination_answered_at IS NOT NULL GROUP BY buyer",
        [hour, day, day, *names, month]).fetchall()
    return {name: Counts(hour=h, day=d, month=m, spent_day=round(sd, 6), spent_month=round(sm, 6))
            for name, h, d, m, sd, sm in rows}
