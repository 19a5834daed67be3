"""The condition language of IVR flows: small YAML mappings, parsed once at load into frozen dataclasses and
evaluated against a call's facts.

Parsing is strict (every mistake is a located ConfigError) so that evaluation on a live call never fails: an
answer the facts cannot give (no region, no quality yet, a schedule nobody configured) is simply false.

    {hours: business}                              the named schedule is open
    {region: [IL, "312", US-NY]}                   dialplan.regions patterns
    {number_type: [mobile, toll_free]}             dialplan.regions.NUMBER_TYPES
    {calls_from_caller: {within: 86400, at_least: 2, at_most: 5}}
    {repeat_caller: true}, {known_caller: true}, {anonymous: true}
    {quality: {at_least: 50, at_most: 90}}
    {var: {name: zip, equals: "60601"}}            also in: [...], matches: "^606", exists: true
    {session: {name: source, equals: google}}      the same over the visitor's session
    {tag: vip}
    {all: [...]}, {any: [...]}, {not: {...}}
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from ari_app.config import _Section
from ari_app.yaml_located import ConfigError, LocatedList
from dialplan.facts import CallFacts
from dialplan.regions import NUMBER_TYPES, matches_region, valid_region_pattern

if TYPE_CHECKING:
    from dialplan.hours import Schedule

KINDS = ("hours", "region", "number_type", "calls_from_caller", "repeat_caller", "known_caller", "anonymous",
         "quality", "var", "session", "tag", "all", "any", "not")
HISTORY_SECONDS = 90 * 86400  # CallFacts.earlier_calls reaches back this far


@dataclass(frozen=True)
class Hours:
    schedule: str


@dataclass(frozen=True)
class InRegion:
    patterns: tuple[str, ...]


@dataclass(frozen=True)
class NumberTypeIn:
    types: tuple[str, ...]


@dataclass(frozen=True)
class Count:
    """``at_least``/``at_most`` are inclusive; a missing bound is open."""

    at_least: int | None
    at_most: int | None

    def holds(self, value: int) -> bool:
        return (self.at_least is None or value >= self.at_least) and (self.at_most is None or value <= self.at_most)

    def describe(self) -> str:
        return " ".join(f"{name} {bound}" for name, bound in (("at_least", self.at_least), ("at_most", self.at_most))
                        if bound is not None)


@dataclass(frozen=True)
class CallsFromCaller:
    within: int  # seconds before this call
    count: Count


@dataclass(frozen=True)
class Flag:
    name: Literal["repeat_caller", "known_caller", "anonymous"]
    value: bool


@dataclass(frozen=True)
class Quality:
    count: Count


@dataclass(frozen=True)
class Lookup:
    """A test on one variable (``scope`` var) or one session attribute (``scope`` session)."""

    scope: Literal["var", "session"]
    name: str
    op: Literal["equals", "in", "matches", "exists"]
    value: str | tuple[str, ...] | re.Pattern[str] | bool


@dataclass(frozen=True)
class Tag:
    tag: str


@dataclass(frozen=True)
class AllOf:
    items: tuple["Condition", ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple["Condition", ...]


@dataclass(frozen=True)
class Not:
    item: "Condition"


Condition = Union[Hours, InRegion, NumberTypeIn, CallsFromCaller, Flag, Quality, Lookup, Tag, AllOf, AnyOf, Not]


def parse_condition(value: Any, file: Path | str, line: int, key: str, *,
                    schedules: Collection[str] = ()) -> Condition:
    """The condition in ``value`` (a located mapping with exactly one key). ``schedules``, when given, are the
    configured schedule names; an ``hours`` condition naming another one is an error."""
    s = _Section(Path(file), value, key, line)
    names = list(s.data)
    if not names:
        raise ConfigError(file, line, key, f"expected a condition: one of {', '.join(KINDS)}")
    if len(names) > 1:
        raise s.error(names[1], "one condition per mapping: combine several with all or any")
    kind = names[0]
    if kind not in KINDS:
        raise s.error(kind, f"unknown condition {kind!r}: expected one of {', '.join(KINDS)}")
    return _PARSERS[kind](s, kind, schedules)


def _hours(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    name = s.string(kind)
    if schedules and name not in schedules:
        raise s.error(kind, f"unknown schedule {name!r}: expected one of {', '.join(sorted(schedules))}")
    return Hours(name)


def _strings(s: _Section, kind: str) -> list[tuple[str, int, str]]:
    """A string or a non-empty list of strings, each with its line and dotted key."""
    value = s.raw(kind)
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [(str(value), s.line_of(kind), s._path(kind))]
    if not isinstance(value, LocatedList) or not value or not all(
            isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise s.error(kind, "expected a string or a non-empty list of strings")
    return [(str(v), value.item_lines[i], f"{s._path(kind)}[{i}]") for i, v in enumerate(value)]


def _region(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    patterns = _strings(s, kind)
    for pattern, line, key in patterns:
        if not valid_region_pattern(pattern):
            raise ConfigError(s.file, line, key, f"bad region pattern {pattern!r}: expected a country (US), "
                              "a state (IL, US-IL, CA-ON) or an area code (312)")
    return InRegion(tuple(p for p, _, _ in patterns))


def _number_type(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    types = _strings(s, kind)
    for name, line, key in types:
        if name not in NUMBER_TYPES:
            raise ConfigError(s.file, line, key,
                              f"unknown number type {name!r}: expected one of {', '.join(sorted(NUMBER_TYPES))}")
    return NumberTypeIn(tuple(t for t, _, _ in types))


def _count(s: _Section, high: int) -> Count:
    """The bounds in ``s``, the last of its keys to be read."""
    low_bound = s.integer("at_least", None, low=0, high=high)
    high_bound = s.integer("at_most", None, low=0, high=high)
    s.reject_unknown()
    if low_bound is None and high_bound is None:
        raise ConfigError(s.file, s.data.line, s.key, "needs at_least or at_most")
    if low_bound is not None and high_bound is not None and low_bound > high_bound:
        raise s.error("at_least", f"{low_bound} is more than at_most {high_bound}: nothing would match")
    return Count(low_bound, high_bound)


def _calls(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    c = s.section(kind, optional=False)
    within = c.integer("within", low=1, high=HISTORY_SECONDS)
    return CallsFromCaller(within, _count(c, 100_000))


def _flag(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    return Flag(kind, s.boolean(kind, True))  # type: ignore[arg-type]


def _quality(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    return Quality(_count(s.section(kind, optional=False), 100))


LOOKUP_OPS = ("equals", "in", "matches", "exists")


def _lookup(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    v = s.section(kind, optional=False)
    name = v.string("name")
    for key in v.data:
        if key != "name" and key not in LOOKUP_OPS:
            raise v.error(key, f"unknown key: expected name and one of {', '.join(LOOKUP_OPS)}")
    ops = [op for op in v.data if op in LOOKUP_OPS]
    if len(ops) != 1:
        where = ops[1] if ops else "name"
        raise v.error(where, f"expected exactly one of {', '.join(LOOKUP_OPS)}")
    op = ops[0]
    value: str | tuple[str, ...] | re.Pattern[str] | bool
    if op == "equals":
        value = v.string(op)
    elif op == "in":
        value = tuple(v.string_list(op))
        if not value:
            raise v.error(op, "expected a non-empty list of strings")
    elif op == "matches":
        value = read_regex(v, op)
    else:
        value = v.boolean(op, True)
    return Lookup(kind, name, op, value)  # type: ignore[arg-type]


def read_regex(s: _Section, name: str) -> re.Pattern[str]:
    """The regular expression under ``name``, compiled; a bad one is a located error."""
    text = s.string(name)
    try:
        return re.compile(text)
    except re.error as exc:
        raise s.error(name, f"invalid regular expression {text!r}: {exc}") from None


def _tag(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    return Tag(s.string(kind))


def _group(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    items = s.raw(kind)
    if not isinstance(items, LocatedList) or not items:
        raise s.error(kind, "expected a non-empty list of conditions")
    parsed = tuple(parse_condition(item, s.file, items.item_lines[i], f"{s._path(kind)}[{i}]", schedules=schedules)
                   for i, item in enumerate(items))
    return AllOf(parsed) if kind == "all" else AnyOf(parsed)


def _not(s: _Section, kind: str, schedules: Collection[str]) -> Condition:
    return Not(parse_condition(s.raw(kind), s.file, s.line_of(kind), s._path(kind), schedules=schedules))


_PARSERS = {
    "hours": _hours, "region": _region, "number_type": _number_type, "calls_from_caller": _calls,
    "repeat_caller": _flag, "known_caller": _flag, "anonymous": _flag, "quality": _quality,
    "var": _lookup, "session": _lookup, "tag": _tag, "all": _group, "any": _group, "not": _not,
}


def evaluate(condition: Condition, facts: CallFacts, schedules: Mapping[str, "Schedule"],
             now: datetime | None = None) -> bool:
    """Whether the condition holds for the call. ``now`` is when the caller reached the condition (hours are
    judged then); without it, when the call arrived."""
    match condition:
        case Hours(name):
            schedule = schedules.get(name)
            return schedule is not None and schedule.is_open(now or facts.arrived_at)
        case InRegion(patterns):
            return matches_region(facts.region, patterns)
        case NumberTypeIn(types):
            return facts.number_type in types
        case CallsFromCaller(within, count):
            return count.holds(facts.calls_within(within))
        case Flag(name, value):
            return bool(getattr(facts, name)) == value
        case Quality(count):
            return facts.quality is not None and count.holds(facts.quality)
        case Lookup(scope, name, op, value):
            source: Mapping[str, Any] = facts.variables if scope == "var" else facts.session
            return _test(source.get(name), op, value)
        case Tag(tag):
            return tag in facts.tags
        case AllOf(items):
            return all(evaluate(item, facts, schedules, now) for item in items)
        case AnyOf(items):
            return any(evaluate(item, facts, schedules, now) for item in items)
        case Not(item):
            return not evaluate(item, facts, schedules, now)
    raise TypeError(f"not a condition: {condition!r}")


def _test(found: Any, op: str, value: Any) -> bool:
    if op == "exists":
        return (found is not None and found != "") == value
    if found is None:
        return False
    text = str(found)
    if op == "equals":
        return text == value
    if op == "in":
        return text in value
    return value.search(text) is not None


def describe(condition: Condition) -> str:
    """The condition in words, for the call's record."""
    match condition:
        case Hours(name):
            return f"hours {name}"
        case InRegion(patterns):
            return f"region in {', '.join(patterns)}"
        case NumberTypeIn(types):
            return f"number_type in {', '.join(types)}"
        case CallsFromCaller(within, count):
            return f"calls_from_caller within {within}s {count.describe()}"
        case Flag(name, value):
            return f"{name} is {str(value).lower()}"
        case Quality(count):
            return f"quality {count.describe()}"
        case Lookup(scope, name, op, value):
            shown = value.pattern if isinstance(value, re.Pattern) else value
            shown = str(shown).lower() if isinstance(shown, bool) else repr(list(shown) if op == "in" else shown)
            return f"{scope} {name} {op} {shown}"
        case Tag(tag):
            return f"tag {tag}"
        case AllOf(items):
            return "(" + " and ".join(map(describe, items)) + ")"
        case AnyOf(items):
            return "(" + " or ".join(map(describe, items)) + ")"
        case Not(item):
            return f"not {describe(item)}"
    raise TypeError(f"not a condition: {condition!r}")
