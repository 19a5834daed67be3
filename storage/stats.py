"""Dashboard figures from the calls table: a day's totals and calls per hour by campaign.

Synchronous, parameterised SQL; run it on the storage thread (``await store.run(day_summary, store.db, ...)``).
Every query is a range on ``arrived_at`` (index calls_arrived); times are the stored UTC text, which compares
as time. "Spam blocked" counts calls refused before answer (decision ``reject``) and calls marked as spam.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlite_utils

from storage.db import format_time

MAX_HOURS = 168  # a week of hourly buckets

_BLOCKED = "(decision = 'reject' OR spam = 1)"


def _window(since: str, until: str | None, test: bool | None) -> tuple[str, list[Any]]:
    where, params = ["arrived_at >= ?"], [since]
    if until is not None:
        where.append("arrived_at < ?")
        params.append(until)
    if test is not None:
        where.append("is_test = ?")
        params.append(1 if test else 0)
    return " AND ".join(where), params


def day_summary(db: sqlite_utils.Database, since: str, until: str | None = None,
                test: bool | None = None) -> dict[str, Any]:
    """Totals for calls that arrived in [since, until): calls, answered (bridged to the business), still
    active, spam blocked, by disposition and by campaign (calls with no campaign under ``null``).

    One range read of the arrival index, grouped by (campaign, disposition) and summed up here. The ``+``
    keeps SQLite from walking the campaign or disposition index over all time to avoid sorting the groups."""
    where, params = _window(since, until, test)
    rows = db.execute(
        f"SELECT campaign, disposition, COUNT(*), COUNT(bridged_at), SUM(ended_at IS NULL), SUM({_BLOCKED}), "
        f"SUM(decision = 'reject'), SUM(spam = 1) FROM calls WHERE {where} GROUP BY +campaign, +disposition",
        params).fetchall()
    totals = [0] * 6
    by_disposition: dict[str, int] = {}
    campaigns: dict[str | None, list[int]] = {}
    for campaign, disposition, *counts in rows:
        counts = [c or 0 for c in counts]
        totals = [a + b for a, b in zip(totals, counts)]
        if disposition is not None:
            by_disposition[disposition] = by_disposition.get(disposition, 0) + counts[0]
        per = campaigns.setdefault(campaign, [0, 0, 0])
        per[0], per[1], per[2] = per[0] + counts[0], per[1] + counts[1], per[2] + counts[3]
    calls, answered, active, blocked, rejected, spam = totals
    by_campaign = [{"campaign": campaign, "calls": n, "answered": a, "spam_blocked": b}
                   for campaign, (n, a, b) in sorted(campaigns.items(),
                                                     key=lambda item: (-item[1][0], item[0] is None, item[0] or ""))]
    return {"since": since, "until": until, "calls": calls, "answered": answered, "active": active,
            "spam_blocked": blocked, "rejected": rejected, "marked_spam": spam,
            "by_disposition": dict(sorted(by_disposition.items())), "by_campaign": by_campaign}


def hour_start(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def hourly(db: sqlite_utils.Database, hours: int, now: datetime | None = None,
           test: bool | None = None) -> dict[str, Any]:
    """Calls per UTC hour by campaign for the last ``hours`` hours, the current (partial) hour last.

    ``hours`` lists each bucket's start; ``series`` has one entry per campaign (``null``: calls with no
    campaign, e.g. rejected), its counts aligned with ``hours``; ``totals`` is the sum over campaigns."""
    if not 1 <= hours <= MAX_HOURS:
        raise ValueError(f"hours: 1 to {MAX_HOURS}")
    last = hour_start(now or datetime.now(timezone.utc))
    starts = [last - timedelta(hours=hours - 1 - i) for i in range(hours)]
    labels = [format_time(s) for s in starts]
    index = {label[:13]: i for i, label in enumerate(labels)}  # 'YYYY-MM-DDTHH'
    where, params = _window(labels[0], format_time(last + timedelta(hours=1)), test)
    rows = db.execute(f"SELECT substr(arrived_at, 1, 13), campaign, COUNT(*) FROM calls WHERE {where} "
                      f"GROUP BY 1, +campaign", params).fetchall()
    series: dict[str | None, list[int]] = {}
    for hour, campaign, count in rows:
        if hour in index:
            series.setdefault(campaign, [0] * hours)[index[hour]] += count
    ordered = sorted(series.items(), key=lambda item: (item[0] is None, -sum(item[1]), item[0] or ""))
    return {"hours": labels,
            "series": [{"campaign": campaign, "counts": counts, "total": sum(counts)} for campaign, counts in ordered],
            "totals": [sum(counts[i] for counts in series.values()) for i in range(hours)]}
