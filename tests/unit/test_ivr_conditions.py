"""ivr.conditions: every kind of condition, and/or/not, the boundaries, and every mistake located exactly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from ari_app.yaml_located import ConfigError
from dialplan.facts import CallFacts, Region
from ivr.conditions import Condition, describe, evaluate, parse_condition
from ivr.flow import _parse

ARRIVED = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)  # a Monday, 15:00 UTC


@dataclass(frozen=True)
class NineToFive:
    """Stands in for dialplan.hours.Schedule: open 9:00-17:00 UTC."""

    def is_open(self, when: datetime) -> bool:
        return 9 <= when.astimezone(timezone.utc).hour < 17


SCHEDULES = {"business": NineToFive()}


def facts(**changes) -> CallFacts:
    base = dict(call_id="c1", campaign="spring", dialed_number="15550100300", caller_number="13125550123",
                arrived_at=ARRIVED, region=Region("US", "IL", "312", "Chicago, IL"),
                number_type="fixed_line_or_mobile")
    base.update(changes)
    return CallFacts(**base)


def cond(text: str, schedules=()) -> Condition:
    """The condition under ``c:`` in ``text`` (a YAML document), parsed as a flow would."""
    data = _parse(text if "\n" in text else f"c: {text}\n", "t.yaml")
    return parse_condition(data["c"], "t.yaml", data.key_lines["c"], "c", schedules=schedules)


def check(text: str, f: CallFacts | None = None, **kwargs) -> bool:
    return evaluate(cond(text), f or facts(), SCHEDULES, **kwargs)


def error(text: str, schedules=()) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        cond(text, schedules)
    return caught.value


# --- hours -----------------------------------------------------------------------------------------------------

def test_hours_at_arrival_by_default_and_at_now_when_given():
    assert check("{hours: business}")
    assert not check("{hours: business}", now=ARRIVED.replace(hour=17))
    assert check("{hours: business}", now=ARRIVED.replace(hour=16, minute=59))


def test_hours_of_a_schedule_nobody_configured_is_false_on_a_call():
    assert not check("{hours: holidays}")


def test_unknown_schedule_is_an_error_only_when_names_are_given():
    cond("{hours: holidays}")
    err = error("{hours: holidays}", schedules={"business"})
    assert (err.file, err.line, err.key) == ("t.yaml", 1, "c.hours")
    assert "unknown schedule 'holidays'" in err.message


# --- region and number type ------------------------------------------------------------------------------------

@pytest.mark.parametrize("patterns, expected", [
    ("[IL]", True), ('["312"]', True), ("[US-IL]", True), ("US", True), ("[US-NY, CA-ON]", False),
    ('[IN, "773"]', False), ("[CA]", False),
])
def test_region(patterns, expected):
    assert check(f"{{region: {patterns}}}") is expected


def test_no_region_matches_nothing():
    assert not check("{region: [US]}", facts(region=None))


def test_bad_region_pattern_is_located_at_its_item():
    err = error("c:\n  region:\n    - IL\n    - XX1\n")
    assert (err.line, err.key) == (4, "c.region[1]")
    assert "bad region pattern 'XX1'" in err.message


def test_number_type():
    assert check("{number_type: [mobile, fixed_line_or_mobile]}")
    assert not check("{number_type: toll_free}")
    err = error("{number_type: [mobile, cell]}")
    assert (err.line, err.key) == (1, "c.number_type[1]")
    assert "unknown number type 'cell'" in err.message


# --- caller history, flags, quality ----------------------------------------------------------------------------

def test_calls_from_caller_counts_the_window_inclusively():
    f = facts(earlier_calls=(ARRIVED - timedelta(hours=1), ARRIVED - timedelta(seconds=86400),
                             ARRIVED - timedelta(days=3)))
    assert check("{calls_from_caller: {within: 86400, at_least: 2}}", f)
    assert not check("{calls_from_caller: {within: 86399, at_least: 2}}", f)
    assert check("{calls_from_caller: {within: 86400, at_most: 2}}", f)
    assert not check("{calls_from_caller: {within: 604800, at_most: 2}}", f)
    assert check("{calls_from_caller: {within: 3600, at_least: 0, at_most: 0}}", facts())


@pytest.mark.parametrize("text, line, key, message", [
    ("{calls_from_caller: {within: 86400}}", 1, "c.calls_from_caller", "needs at_least or at_most"),
    ("{calls_from_caller: {at_least: 2}}", 1, "c.calls_from_caller.within", "is required"),
    ("{calls_from_caller: {within: 0, at_least: 2}}", 1, "c.calls_from_caller.within", "out of range"),
    ("{calls_from_caller: {within: 60, at_least: 3, at_most: 2}}", 1, "c.calls_from_caller.at_least",
     "more than at_most"),
    ("{calls_from_caller: {within: 60, at_lest: 3}}", 1, "c.calls_from_caller.at_lest", "unknown key"),
    ("{quality: {at_least: 101}}", 1, "c.quality.at_least", "out of range"),
    ("{quality: 50}", 1, "c.quality", "expected a mapping"),
])
def test_count_mistakes(text, line, key, message):
    err = error(text)
    assert (err.file, err.line, err.key) == ("t.yaml", line, key)
    assert message in err.message


@pytest.mark.parametrize("name", ["repeat_caller", "known_caller", "anonymous"])
def test_flags(name):
    assert check(f"{{{name}: false}}")
    assert not check(f"{{{name}: true}}")
    assert check(f"{{{name}: true}}", facts(**{name: True}))


def test_quality_bounds_and_unknown_quality():
    assert check("{quality: {at_least: 50}}", facts(quality=50))
    assert not check("{quality: {at_least: 50}}", facts(quality=49))
    assert check("{quality: {at_most: 50}}", facts(quality=50))
    assert not check("{quality: {at_most: 50}}", facts(quality=51))
    assert not check("{quality: {at_least: 0}}", facts(quality=None))
    assert not check("{quality: {at_most: 100}}", facts(quality=None))


# --- variables, session, tags ----------------------------------------------------------------------------------

@pytest.mark.parametrize("test, expected", [
    ('equals: "60601"', True), ("equals: 60601", True), ('equals: "60602"', False),
    ('in: ["10001", "60601"]', True), ("in: [10001]", False),
    ('matches: "^606"', True), ('matches: "^100"', False),
    ("exists: true", True), ("exists: false", False),
])
def test_var(test, expected):
    f = facts(variables={"zip": "60601"})
    assert check(f"{{var: {{name: zip, {test}}}}}", f) is expected


@pytest.mark.parametrize("test, expected", [
    ('equals: ""', False), ("in: [x]", False), ("matches: .*", False), ("exists: true", False), ("exists: false", True),
])
def test_missing_var(test, expected):
    assert check(f"{{var: {{name: zip, {test}}}}}") is expected


def test_session_compares_as_text():
    f = facts(session={"source": "google", "visits": 3})
    assert check("{session: {name: source, equals: google}}", f)
    assert check('{session: {name: visits, in: ["2", "3"]}}', f)
    assert not check("{session: {name: keyword, exists: true}}", f)


@pytest.mark.parametrize("text, key, message", [
    ("{var: {name: zip}}", "c.var.name", "expected exactly one of"),
    ("{var: {name: zip, equals: a, in: [a]}}", "c.var.in", "expected exactly one of"),
    ("{var: {name: zip, equal: a}}", "c.var.equal", "unknown key"),
    ('{var: {name: zip, matches: "(606"}}', "c.var.matches", "invalid regular expression"),
    ("{var: {equals: a}}", "c.var.name", "is required"),
    ("{session: {name: s, in: []}}", "c.session.in", "non-empty list"),
])
def test_lookup_mistakes(text, key, message):
    err = error(text)
    assert (err.line, err.key) == (1, key)
    assert message in err.message


def test_tag():
    assert check("{tag: vip}", facts(tags={"vip"}))
    assert not check("{tag: vip}")


# --- combinations ----------------------------------------------------------------------------------------------

def test_all_any_not():
    f = facts(tags={"vip"}, quality=80)
    assert check("{all: [{tag: vip}, {region: IL}]}", f)
    assert not check("{all: [{tag: vip}, {region: NY}]}", f)
    assert check("{any: [{region: NY}, {quality: {at_least: 80}}]}", f)
    assert not check("{any: [{region: NY}, {tag: gold}]}", f)
    assert check("{not: {region: NY}}", f)
    assert check("{any: [{region: NY}, {not: {all: [{tag: vip}, {anonymous: true}]}}]}", f)


def test_in_region_or_during_hours():
    """The seed's example: "in region or during hours"."""
    text = "{any: [{region: CA}, {hours: business}]}"
    assert check(text)
    assert not check(text, now=ARRIVED.replace(hour=20))


def test_nested_mistakes_are_located():
    err = error("c:\n  all:\n    - {region: IL}\n    - not:\n        hour: business\n")
    assert (err.line, err.key) == (5, "c.all[1].not.hour")
    assert "unknown condition 'hour'" in err.message


@pytest.mark.parametrize("text, line, key, message", [
    ("{}", 1, "c", "expected a condition"),
    ("{region: IL, tag: vip}", 1, "c.tag", "one condition per mapping"),
    ("c:\n  region: IL\n  tag: vip\n", 3, "c.tag", "one condition per mapping"),
    ("[region, IL]", 1, "c", "expected a mapping"),
    ("{all: []}", 1, "c.all", "non-empty list"),
    ("{any: {region: IL}}", 1, "c.any", "non-empty list"),
    ("{repeat_caller: yes please}", 1, "c.repeat_caller", "expected true or false"),
])
def test_shape_mistakes(text, line, key, message):
    err = error(text)
    assert (err.line, err.key) == (line, key)
    assert message in err.message


def test_describe_for_the_record():
    text = ("{all: [{hours: business}, {region: [IL, '312']}, {number_type: mobile}, "
            "{calls_from_caller: {within: 86400, at_least: 2}}, {repeat_caller: true}, {quality: {at_most: 40}}, "
            "{var: {name: zip, matches: '^606'}}, {session: {name: source, in: [google]}}, "
            "{any: [{tag: vip}, {not: {anonymous: true}}]}]}")
    assert describe(cond(text)) == (
        "(hours business and region in IL, 312 and number_type in mobile and calls_from_caller within 86400s "
        "at_least 2 and repeat_caller is true and quality at_most 40 and var zip matches '^606' and "
        "session source in ['google'] and (tag vip or not anonymous is true))")
    assert describe(cond("{var: {name: x, exists: false}}")) == "var x exists false"
