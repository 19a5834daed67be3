"""Business-hours schedules: when a campaign, buyer or destination takes calls, in its own time zone.

A schedule is a weekly pattern of open ranges plus whole-day holidays. Times are wall-clock times in the
schedule's zone, so "09:00-17:00" means nine to five local time on both sides of a DST change.

A range may run past midnight ("22:00-02:00"); it belongs to the day it starts. So a Friday "22:00-02:00" is
open early Saturday morning, and a holiday cancels the ranges that start on that day: a night shift that
starts the evening before a holiday still runs to its end.

YAML (the top-level ``schedules:`` mapping)::

    schedules:
      business:
        timezone: America/Chicago
        mon-fri: "09:00-17:00"        # mon..sun or a range of them (mon-fri, sat-sun, fri-mon wraps)
        sat: ["10:00-12:00", "13:00-15:00"]
        sun: closed                   # or "24h"; a day not mentioned is closed
        holidays: ["2026-12-25", "2027-01-01"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from ari_app.config import _Section

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHEDULE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
LOOKAHEAD_DAYS = 14  # next_open gives up after this: a schedule closed for two weeks is "closed", not "opens at"

_RANGE_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_MIDNIGHT = time(0, 0)

Ranges = tuple[tuple[time, time], ...]


def _end_on(day: date, start: time, end: time) -> datetime:
    """The wall-clock end of a range starting on ``day``: an end at or before the start is the next day's
    (so ``(time(0), time(0))``, written "00:00-24:00" or "24h", is the whole day)."""
    return datetime.combine(day if end > start else day + timedelta(days=1), end)


def _first_moment(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant the clock in ``zone`` reads ``wall`` or later, in ``zone``.

    Usually that is ``wall`` itself (the first of the two when DST repeats an hour). A wall time skipped by a
    spring-forward jump (02:30 in Chicago on the day 02:00 becomes 03:00) never occurs; a range starting
    then is open from the jump (03:00), found by bisecting between the two readings of the missing time."""
    early = wall.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    late = wall.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    if early <= late:  # a real time, or a repeated one (fold=0 is its first occurrence)
        return early.astimezone(zone)
    low, high = late, early  # in a gap fold=0 reads later: the jump lies between
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0).astimezone(zone)


@dataclass(frozen=True)
class Schedule:
    """Open ranges by weekday (0 = Monday, all seven keys present, ``()`` = closed) in ``timezone``.

    A range ``(start, end)`` with ``end <= start`` runs past midnight to ``end`` the next day; ``end`` of
    ``time(0)`` is midnight ("24:00")."""

    name: str
    timezone: str
    weekly: Mapping[int, Ranges] = field(hash=False)
    holidays: frozenset[date] = frozenset()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)  # ZoneInfo caches instances by key

    def _ranges_from(self, day: date) -> list[tuple[datetime, datetime]]:
        """Wall-clock (naive) open ranges that start on ``day``."""
        if day in self.holidays:
            return []
        return [(datetime.combine(day, start), _end_on(day, start, end))
                for start, end in self.weekly.get(day.weekday(), ())]

    def is_open(self, when: datetime) -> bool:
        """Whether the schedule is open at the moment ``when`` (timezone-aware; naive raises ValueError,
        because guessing a zone is how 9-to-5 silently becomes 3-to-11)."""
        local = self._local(when)
        today = local.date()
        return any(start <= local < end
                   for day in (today - timedelta(days=1), today)
                   for start, end in self._ranges_from(day))

    def next_open(self, when: datetime) -> datetime | None:
        """The first moment at or after ``when`` that the schedule is open, in the schedule's zone (``when``
        itself if open now), for messages like "we open at 9"; None if it does not open within 14 days."""
        zone = self.zone
        if self.is_open(when):
            return when.astimezone(zone)
        local = self._local(when)
        limit = when + timedelta(days=LOOKAHEAD_DAYS)
        for offset in range(LOOKAHEAD_DAYS + 1):
            day = local.date() + timedelta(days=offset)
            for start, _ in sorted(self._ranges_from(day)):
                moment = _first_moment(start, zone)
                if moment > limit:
                    return None
                if moment > when and self.is_open(moment):
                    return moment
        return None

    def _local(self, when: datetime) -> datetime:
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError(f"schedule {self.name!r}: {when!r} has no time zone")
        return when.astimezone(self.zone).replace(tzinfo=None)


def _clock(hours: str, minutes: str, *, end: bool) -> time | None:
    h, m = int(hours), int(minutes)
    if end and (h, m) == (24, 0):
        return _MIDNIGHT
    if h > 23 or m > 59:
        return None
    return time(h, m)


def _parse_range(text: str) -> tuple[time, time] | None:
    match = _RANGE_RE.match(text)
    if not match:
        return None
    start = _clock(match[1], match[2], end=False)
    end = _clock(match[3], match[4], end=True)
    if start is None or end is None:
        return None
    if start == end and not (start == _MIDNIGHT and match[3] == "24"):
        return None  # "09:00-09:00": empty or 24h? Ambiguous, so refused; write "24h"
    return start, end


def _days(key: str) -> list[int] | None:
    """Weekdays of a day key: ``"wed"``, ``"mon-fri"``, ``"fri-mon"`` (wraps past Sunday)."""
    first, sep, last = key.partition("-")
    if first not in DAY_NAMES or (sep and last not in DAY_NAMES):
        return None
    a = DAY_NAMES.index(first)
    b = DAY_NAMES.index(last) if sep else a
    return [(a + i) % 7 for i in range((b - a) % 7 + 1)]


def _day_ranges(s: _Section, key: str) -> Ranges:
    value: Any = s.raw(key)
    hint = 'expected "HH:MM-HH:MM", a list of them, "closed" or "24h"'
    if isinstance(value, str) and value.strip().lower() == "closed":
        return ()
    if isinstance(value, str) and value.strip().lower() == "24h":
        return ((_MIDNIGHT, _MIDNIGHT),)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise s.error(key, f"{value!r}: {hint}")
    ranges = []
    for item in items:
        parsed = _parse_range(item)
        if parsed is None:
            raise s.error(key, f"{item!r}: {hint}; start and end must differ, 24:00 only as an end")
        ranges.append(parsed)
    return tuple(sorted(ranges))


def _holiday(s: _Section, value: Any) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):  # YAML reads unquoted dates itself
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise s.error("holidays", f"{value!r}: expected a date like 2026-12-25") from None


def read_schedule(s: _Section, name: str) -> Schedule:
    """One schedule's section."""
    zone = s.string("timezone")
    try:
        ZoneInfo(zone)
    except Exception:  # ZoneInfoNotFoundError, ValueError for malformed keys such as "../x"
        raise s.error("timezone", f"{zone!r} is not a time zone such as America/Chicago") from None
    holidays_raw: Any = s.raw("holidays", [])
    if not isinstance(holidays_raw, list):
        holidays_raw = [holidays_raw]
    holidays = frozenset(_holiday(s, v) for v in holidays_raw)
    weekly: dict[int, Ranges] = {day: () for day in range(7)}
    given: dict[int, str] = {}
    for key in s.data:
        if key in ("timezone", "holidays"):
            continue
        days = _days(str(key).lower())
        if days is None:
            raise s.error(str(key), f"not a day: expected {', '.join(DAY_NAMES)}, a range like mon-fri, "
                                    "timezone or holidays")
        for day in days:
            if day in given:
                raise s.error(str(key), f"{DAY_NAMES[day]} is already given by {given[day]!r}")
            given[day] = str(key)
        ranges = _day_ranges(s, key)
        for day in days:
            weekly[day] = ranges
    s.reject_unknown()
    return Schedule(name=name, timezone=zone, weekly=MappingProxyType(weekly), holidays=holidays)


def read_schedules(s: _Section) -> dict[str, Schedule]:
    """The top-level ``schedules:`` mapping: schedule name -> schedule section."""
    schedules: dict[str, Schedule] = {}
    for name in list(s.data):
        if not isinstance(name, str) or not SCHEDULE_NAME_RE.match(name):
            raise s.error(str(name), "schedule names are lower-case letters, digits, - and _ (at most 40)")
        schedules[name] = read_schedule(s.section(name, optional=False), name)
    s.reject_unknown()
    return schedules
