"""A call's revenue, payout and margin from its stored record: when the call ends, and again when a conversion
or a sale amount is posted later (so one place decides what a call is worth)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

import sqlite_utils

from ari_app.config import Settings
from dialplan.payouts import compute_payout
from dialplan.regions import caller_region
from storage.db import format_time, parse_time


def payout_fields(db: sqlite_utils.Database, row: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The payout columns for ``row`` under its campaign's rules ({} without rules). Runs on the storage thread."""
    campaign = settings.campaigns.get(row.get("campaign") or "")
    rules = campaign.payout if campaign is not None else None
    if rules is None:
        return {}
    repeat = False
    window = rules.repeat.window if rules.repeat is not None else 0
    caller = row.get("caller_number") or ""
    if window and any(ch.isdigit() for ch in caller):  # withheld callers are not each other's repeats
        arrived = parse_time(row["arrived_at"])
        repeat = db.execute(
            "SELECT 1 FROM calls WHERE caller_number = ? AND campaign = ? AND arrived_at >= ? AND arrived_at < ?"
            " AND id != ? LIMIT 1",
            [row["caller_number"], row["campaign"], format_time(arrived - timedelta(seconds=window)),
             row["arrived_at"], row["id"]]).fetchone() is not None
    payout = compute_payout(rules, row, region=caller_region(row.get("caller_number")), repeat_within_window=repeat,
                            winning_bid=row.get("winning_bid"))
    return payout.record()
