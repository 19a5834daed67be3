"""Business-hours schedules: reading them from YAML, and open/closed/next-open across midnight and DST."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from ari_app.config import _Section
from ari_app.yaml_located import ConfigError, load_located
from dialplan.hours import Schedule, read_schedules

CHICAGO = ZoneInfo("America/Chicago")


def schedules(tmp_path: Path, text: str) -> dict[str, Schedule]:
    path = tmp_path / "ringpool.yaml"
    path.write_text(text, encoding="utf-8")
    return read_schedules(_Section(path, load_located(path), "", 1).section("schedules"))


def chicago(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHICAGO)  # type: ignore[misc]


BUSINESS = """\
schedules:
  business:
    timezone: America/Chicago
    mon-fri: "09:00-17:00"
    sat: ["10:00-12:00", "13:00-15:00"]
    holidays: ["2026-12-25", 2027-01-01]
  night:
    timezone: America/Chicago
    fri: "22:00-02:00"
    sat-sun: 24h
  late:
    timezone: America/Chicago
    thu: "18:00-24:00"
"""


@pytest.fixture
def parsed(tmp_path: Path) -> dict[str, Schedule]:
    return schedules(tmp_path, BUSINESS)


def test_reads_weekly_ranges_and_holidays(parsed: dict[str, Schedule]) -> None:
    business = parsed["business"]
    assert business.timezone == "America/Chicago"
    assert business.weekly[0] == business.weekly[4] == ((time(9), time(17)),)
    assert business.weekly[5] == ((time(10), time(12)), (time(13), time(15)))
    assert business.weekly[6] == ()  # not mentioned: closed
    assert business.holidays == frozenset({date(2026, 12, 25), date(2027, 1, 1)})
    assert set(business.weekly) == set(range(7))
    hash(business)  # usable as a dict key / in sets despite the mapping field


def test_open_and_closed(parsed: dict[str, Schedule]) -> None:
    business = parsed["business"]
    assert business.is_open(chicago(2026, 6, 1, 9, 0))  # Monday
    assert business.is_open(chicago(2026, 6, 1, 16, 59))
    assert not business.is_open(chicago(2026, 6, 1, 17, 0))  # the end is exclusive
    assert not business.is_open(chicago(2026, 6, 1, 8, 59))
    assert business.is_open(chicago(2026, 6, 6, 11, 0))  # Saturday
    assert not business.is_open(chicago(2026, 6, 6, 12, 30))  # lunch
    assert not business.is_open(chicago(2026, 6, 7, 11, 0))  # Sunday
    assert not business.is_open(chicago(2026, 12, 25, 11, 0))  # holiday, a Friday


def test_other_zones_are_converted(parsed: dict[str, Schedule]) -> None:
    business = parsed["business"]
    # 14:30 UTC in June is 09:30 CDT; in January it is 08:30 CST.
    assert business.is_open(datetime(2026, 6, 1, 14, 30, tzinfo=timezone.utc))
    assert not business.is_open(datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc))
    assert business.is_open(datetime(2026, 1, 5, 15, 30, tzinfo=timezone.utc))
    with pytest.raises(ValueError, match="no time zone"):
        business.is_open(datetime(2026, 6, 1, 10, 0))


def test_ranges_past_midnight_belong_to_the_day_they_start(parsed: dict[str, Schedule]) -> None:
    night = parsed["night"]
    assert night.is_open(chicago(2026, 6, 5, 23, 0))  # Friday night
    assert night.is_open(chicago(2026, 6, 6, 1, 59))  # ... into Saturday (also 24h itself)
    assert not night.is_open(chicago(2026, 6, 5, 1, 0))  # Friday early morning: Thursday had no range
    assert night.is_open(chicago(2026, 6, 7, 23, 59))  # Sunday 24h
    assert not night.is_open(chicago(2026, 6, 8, 0, 30))  # Sunday's 24h ends at midnight
    late = parsed["late"]
    assert late.weekly[3] == ((time(18), time(0)),)
    assert late.is_open(chicago(2026, 6, 4, 23, 59))
    assert not late.is_open(chicago(2026, 6, 5, 0, 0))


def test_holiday_cancels_ranges_starting_that_day_only(tmp_path: Path) -> None:
    night = schedules(tmp_path, """\
schedules:
  night:
    timezone: America/Chicago
    mon-sun: "22:00-02:00"
    holidays: ["2026-12-25"]
""")["night"]
    assert night.is_open(chicago(2026, 12, 25, 1, 0))  # Christmas Eve's shift runs to its end
    assert not night.is_open(chicago(2026, 12, 25, 23, 0))
    assert not night.is_open(chicago(2026, 12, 26, 1, 0))
    assert night.is_open(chicago(2026, 12, 26, 23, 0))


def test_next_open(parsed: dict[str, Schedule]) -> None:
    business = parsed["business"]
    friday_evening = chicago(2026, 6, 5, 18, 0)
    assert business.next_open(friday_evening) == chicago(2026, 6, 6, 10, 0)
    assert business.next_open(chicago(2026, 6, 6, 12, 15)) == chicago(2026, 6, 6, 13, 0)
    now = chicago(2026, 6, 1, 10, 0)
    assert business.next_open(now) == now  # open now
    # Christmas (Friday) is a holiday: next is Saturday 10:00. Asked in UTC, answered in Chicago time.
    answer = business.next_open(datetime(2026, 12, 24, 23, 30, tzinfo=timezone.utc))
    assert answer == chicago(2026, 12, 26, 10, 0)
    assert answer is not None and answer.tzinfo == CHICAGO and answer.hour == 10


def test_next_open_none_when_closed_for_two_weeks(tmp_path: Path) -> None:
    closed = schedules(tmp_path, """\
schedules:
  closed:
    timezone: UTC
    mon: closed
""")["closed"]
    assert not closed.is_open(datetime(2026, 6, 1, 12, tzinfo=timezone.utc))
    assert closed.next_open(datetime(2026, 6, 1, 12, tzinfo=timezone.utc)) is None
    holidays = ", ".join(f'"2026-06-{d:02d}"' for d in range(1, 31))
    vacation = schedules(tmp_path, f"""\
schedules:
  vacation:
    timezone: UTC
    mon-sun: "09:00-17:00"
    holidays: [{holidays}]
""")["vacation"]
    assert vacation.next_open(datetime(2026, 6, 1, tzinfo=timezone.utc)) is None
    assert vacation.next_open(datetime(2026, 6, 20, tzinfo=timezone.utc)) == datetime(
        2026, 7, 1, 9, tzinfo=ZoneInfo("UTC"))


def test_dst_keeps_wall_clock_hours(tmp_path: Path) -> None:
    sched = schedules(tmp_path, """\
schedules:
  early:
    timezone: America/Chicago
    sun: "02:30-04:00"
    mon-sat: "09:00-17:00"
""")["early"]
    # 2026-03-08 is spring-forward in Chicago: 02:00 CST jumps to 03:00 CDT; 02:30 does not exist.
    saturday = chicago(2026, 3, 7, 18, 0)
    opens = sched.next_open(saturday)
    assert opens is not None
    assert opens.astimezone(timezone.utc) == datetime(2026, 3, 8, 8, 0, tzinfo=timezone.utc)  # 03:00 CDT
    assert sched.is_open(datetime(2026, 3, 8, 8, 30, tzinfo=timezone.utc))  # 03:30 CDT
    assert not sched.is_open(datetime(2026, 3, 8, 9, 0, tzinfo=timezone.utc))  # 04:00 CDT
    # Monday after: 09:00 CDT is 14:00 UTC (it was 15:00 UTC the week before).
    assert sched.is_open(datetime(2026, 3, 9, 14, 0, tzinfo=timezone.utc))
    assert not sched.is_open(datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc))
    # Fall back (2026-11-01): 01:00-02:00 happens twice; 09:00 local is 15:00 UTC again.
    assert sched.is_open(datetime(2026, 11, 2, 15, 0, tzinfo=timezone.utc))
    assert not sched.is_open(datetime(2026, 11, 2, 14, 30, tzinfo=timezone.utc))


def test_day_range_wraps_past_sunday(tmp_path: Path) -> None:
    sched = schedules(tmp_path, "schedules:\n  wk:\n    timezone: UTC\n    fri-mon: 24h\n")["wk"]
    assert [day for day, ranges in sched.weekly.items() if ranges] == [0, 4, 5, 6]


@pytest.mark.parametrize(("body", "key", "message"), [
    ("  b:\n    timezone: Mars/Olympus\n    mon: 24h\n", "schedules.b.timezone", "not a time zone"),
    ("  b:\n    mon: 24h\n", "schedules.b.timezone", "is required"),
    ("  b:\n    timezone: UTC\n    monday: 24h\n", "schedules.b.monday", "not a day"),
    ("  b:\n    timezone: UTC\n    mon-fry: 24h\n", "schedules.b.mon-fry", "not a day"),
    ("  b:\n    timezone: UTC\n    mon-fri: 24h\n    wed: closed\n", "schedules.b.wed", "wed is already given"),
    ("  b:\n    timezone: UTC\n    mon: '09:00-09:00'\n", "schedules.b.mon", "must differ"),
    ("  b:\n    timezone: UTC\n    mon: '9am-5pm'\n", "schedules.b.mon", "HH:MM-HH:MM"),
    ("  b:\n    timezone: UTC\n    mon: '09:00-25:00'\n", "schedules.b.mon", "HH:MM-HH:MM"),
    ("  b:\n    timezone: UTC\n    mon: '24:00-02:00'\n", "schedules.b.mon", "HH:MM-HH:MM"),
    ("  b:\n    timezone: UTC\n    mon: 10:00\n", "schedules.b.mon", "HH:MM-HH:MM"),  # YAML 1.1 reads 600
    ("  b:\n    timezone: UTC\n    mon: ['09:00-12:00', 24h]\n", "schedules.b.mon", "HH:MM-HH:MM"),
    ("  b:\n    timezone: UTC\n    holidays: ['2026-13-01']\n", "schedules.b.holidays", "expected a date"),
    ("  b:\n    timezone: UTC\n    holidays: ['2026-12-25 10:00']\n", "schedules.b.holidays", "expected a date"),
    ("  Business:\n    timezone: UTC\n", "schedules.Business", "schedule names"),
    ("  b:\n", "schedules.b", "is required"),
    ("  b: 24h\n", "schedules.b", "expected a mapping"),
])
def test_errors_name_the_key(tmp_path: Path, body: str, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        schedules(tmp_path, "schedules:\n" + body)
    assert caught.value.key == key
    assert message in caught.value.message
    assert caught.value.line is not None and caught.value.line >= 2


def test_empty_schedules_section(tmp_path: Path) -> None:
    assert schedules(tmp_path, "other: 1\n") == {}


def test_repeated_hour_opens_at_its_first_occurrence(tmp_path: Path) -> None:
    text = "schedules:\n  b:\n    timezone: America/Chicago\n    sun: '01:30-03:00'\n"
    sched = schedules(tmp_path, text)["b"]
    assert sched == schedules(tmp_path, text)["b"]  # value equality, e.g. for config reload diffs
    # 2026-11-01: 01:00-02:00 happens twice in Chicago (CDT, then CST); 01:30 CDT is 06:30 UTC.
    opens = sched.next_open(datetime(2026, 11, 1, 0, 0, tzinfo=timezone.utc))
    assert opens is not None
    assert opens.astimezone(timezone.utc) == datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc)
    assert sched.is_open(datetime(2026, 11, 1, 7, 30, tzinfo=timezone.utc))  # the second 01:30 (CST)
