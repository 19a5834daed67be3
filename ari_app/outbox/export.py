"""Offline conversions for Google Ads: converted calls that came from an ad click, as the upload CSV.

The layout follows Google's "conversions from clicks" template: a ``Parameters:TimeZone`` line, then the
header. Times are written in UTC with an explicit ``+0000`` so the zone is never guessed. Cells are
guarded against formula injection because operators open these files in spreadsheets first.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any, Iterable, TextIO

import sqlite_utils

from storage.db import parse_time

TIMEZONE_LINE = "Parameters:TimeZone=+0000"
HEADER = ("Google Click ID", "Conversion Name", "Conversion Time", "Conversion Value", "Conversion Currency")
DEFAULT_CONVERSION_NAME = "Phone call"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ConversionRow:
    gclid: str
    name: str
    time: str  # storage format (ISO, UTC)
    value: Any  # a number, or None (Google then uses the conversion action's default value)
    currency: str | None


def conversions_for_export(db: sqlite_utils.Database, since: str, until: str, campaign: str | None = None, *,
                           default_name: str = DEFAULT_CONVERSION_NAME) -> list[ConversionRow]:
    """Real (not test) calls with a gclid converted in [since, until), oldest first. The window is on the
    conversion time: that is what an upload reports, and conversions can come long after the call."""
    sql = ("SELECT gclid, conversion_name, converted_at, conversion_value, conversion_currency FROM calls "
           "WHERE gclid IS NOT NULL AND gclid <> '' AND converted_at IS NOT NULL "
           "AND converted_at >= ? AND converted_at < ? AND is_test = 0")
    params: list[Any] = [since, until]
    if campaign is not None:
        sql += " AND campaign = ?"
        params.append(campaign)
    sql += " ORDER BY converted_at, id"
    return [ConversionRow(gclid=g, name=n or default_name, time=t, value=v, currency=c)
            for g, n, t, v, c in db.execute(sql, params).fetchall()]


def google_time(stored: str) -> str:
    """``2026-11-22T17:00:00.000Z`` -> ``2026-11-22 17:00:00+0000`` (yyyy-MM-dd HH:mm:ssZ)."""
    return parse_time(stored).strftime("%Y-%m-%d %H:%M:%S+0000")


def safe_cell(value: Any) -> str:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (OWASP CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _value(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.2f}"
    return safe_cell(value)  # SQLite keeps whatever text was stored: never trust it to be a number


def write_csv(rows: Iterable[ConversionRow], stream: TextIO) -> int:
    """Write the upload file; returns the number of conversions written."""
    writer = csv.writer(stream, lineterminator="\r\n")
    writer.writerow([TIMEZONE_LINE])
    writer.writerow(HEADER)
    count = 0
    for row in rows:
        writer.writerow([safe_cell(row.gclid), safe_cell(row.name), google_time(row.time), _value(row.value),
                         safe_cell(row.currency)])
        count += 1
    return count
