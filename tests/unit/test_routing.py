"""dialplan.routing: the strategies, skipping with reasons, fallback, whisper, caller ID and the config readers."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, time, timezone
from pathlib import Path
from typing import Any

import pytest

from ari_app.config import _Section
from ari_app.yaml_located import ConfigError, load_located
from dialplan.caller_id import CallerIdMode
from dialplan.caps import Caps, Usage
from dialplan.facts import CallFacts, Region
from dialplan.hours import Schedule
from dialplan.routing import (Attempt, DestinationLimits, Plan, RoutingSettings, Target, default_routing,
                              plan_route, read_destination_limits, read_routing, render_whisper)

NOW = datetime(2026, 3, 14, 15, 30, tzinfo=timezone.utc)


@dataclass(frozen=True)
class FixedSchedule:
    """Stands in for dialplan.hours.Schedule: the planner only asks is_open."""

    open: bool

    def is_open(self, when: datetime) -> bool:
        return self.open


SCHEDULES: dict[str, Any] = {"business": FixedSchedule(True), "night": FixedSchedule(False)}


def make_facts(**changes: Any) -> CallFacts:
    facts = CallFacts(call_id="c1", campaign="spring", dialed_number="18005550100", caller_number="13125551234",
                      arrived_at=NOW, region=Region("US", "IL", "312", "Chicago, IL"), quality=70,
                      session={"source": "google", "keyword": "plumber"}, variables={"department": "sales"})
    for name, value in changes.items():
        setattr(facts, name, value)
    return facts


def settings(*names: str | tuple[str, float], strategy: str = "priority", **changes: Any) -> RoutingSettings:
    targets = tuple(Target(n) if isinstance(n, str) else Target(*n) for n in names)
    return replace(RoutingSettings(destinations=targets, strategy=strategy), **changes)


async def plan(routing: RoutingSettings, *, limits: dict[str, DestinationLimits] | None = None,
               usage: Usage | None = None, facts: CallFacts | None = None, rng: random.Random | None = None) -> Plan:
    return await plan_route(routing, facts or make_facts(), destinations=limits or {}, buyers={},
                            schedules=SCHEDULES, usage=usage or Usage(), bidder=None, now=NOW, rng=rng)


def order(p: Plan) -> list[tuple[str, ...]]:
    return [a.destinations for a in p.attempts]


def why(p: Plan) -> dict[str, str]:
    return {s["name"]: s["why"] for s in p.skipped}


async def test_priority_in_order() -> None:
    p = await plan(settings("a", "b", "c"))
    assert order(p) == [("a",), ("b",), ("c",)]
    assert p.attempts[0] == Attempt(("a",), reason="priority #1: a")
    assert p.skipped == () and p.bids == ()


async def test_priority_skips_closed_out_of_region_and_capped_with_reasons() -> None:
    usage = Usage()
    usage.start("destination", "busy")
    limits = {"night-desk": DestinationLimits(hours="night"), "texas": DestinationLimits(regions=("TX", "214")),
              "busy": DestinationLimits(caps=Caps(concurrent=1)), "chicago": DestinationLimits(
                  hours="business", regions=("IL",), caps=Caps(concurrent=2))}
    p = await plan(settings("night-desk", "texas", "busy", "chicago"), limits=limits, usage=usage)
    assert order(p) == [("chicago",)]
    assert p.attempts[0].reason == "priority #1: chicago"
    assert why(p) == {"night-desk": "closed (hours night)",
                      "texas": "out of region: caller US IL 312, wanted TX, 214",
                      "busy": "cap concurrent 1/1"}
    record = p.record()
    assert record["route_strategy"] == "priority" and record["bids"] is None
    assert "skipped destination texas: out of region: caller US IL 312, wanted TX, 214" in record["route_reasons"]


async def test_with_a_real_schedule() -> None:
    """dialplan.hours.Schedule in the schedule's own zone: 15:30 UTC is 10:30 in Chicago."""
    weekdays = Schedule("business", "America/Chicago", {d: ((time(9), time(17)),) if d < 5 else () for d in range(7)})
    limits = {"desk": DestinationLimits(hours="business")}

    async def at(moment: datetime) -> Plan:
        return await plan_route(settings("desk", "mobile"), make_facts(), destinations=limits, buyers={},
                                schedules={"business": weekdays}, usage=Usage(), bidder=None, now=moment)

    assert order(await at(datetime(2026, 3, 16, 15, 30, tzinfo=timezone.utc)))[0] == ("desk",)  # Monday
    saturday = await at(NOW)
    assert order(saturday) == [("mobile",)]
    assert why(saturday) == {"desk": "closed (hours business)"}


async def test_a_withheld_caller_has_no_region() -> None:
    limits = {"local": DestinationLimits(regions=("IL",)), "anywhere": DestinationLimits()}
    p = await plan(settings("local", "anywhere"), limits=limits,
                   facts=make_facts(caller_number=None, anonymous=True, region=None))
    assert order(p) == [("anywhere",)]
    assert why(p)["local"] == "out of region: caller region unknown, wanted IL"


async def test_round_robin_rotates_per_campaign() -> None:
    usage = Usage()
    routing = settings("a", "b", "c", strategy="round_robin")
    firsts = [order(await plan(routing, usage=usage))[0][0] for _ in range(6)]
    assert firsts == ["a", "b", "c", "a", "b", "c"]
    p = await plan(routing, usage=usage)
    assert order(p) == [("a",), ("b",), ("c",)]  # the rest stay as failover, in rotated order
    p = await plan(routing, usage=usage)
    assert order(p) == [("b",), ("c",), ("a",)]
    other = await plan(routing, usage=usage, facts=make_facts(campaign="autumn"))
    assert order(other)[0] == ("a",)  # another campaign has its own turn


async def test_round_robin_skips_a_capped_destination_without_losing_turns() -> None:
    usage = Usage()
    usage.start("destination", "b")
    limits = {"b": DestinationLimits(caps=Caps(concurrent=1))}
    routing = settings("a", "b", "c", strategy="round_robin")
    firsts = [order(await plan(routing, usage=usage, limits=limits))[0][0] for _ in range(3)]
    assert firsts == ["a", "c", "c"]  # b's turn goes to the next in line


async def test_weighted_distribution() -> None:
    """10,000 seeded draws: the first choice follows the weights within a percentage point."""
    rng = random.Random(20260314)
    routing = settings("a", ("b", 3), ("c", 6), strategy="weighted")
    firsts: Counter[str] = Counter()
    for _ in range(10_000):
        firsts[order(await plan(routing, rng=rng))[0][0]] += 1
    for name, share in (("a", 0.1), ("b", 0.3), ("c", 0.6)):
        assert abs(firsts[name] / 10_000 - share) < 0.015, firsts


async def test_weighted_failover_by_weight_and_skips() -> None:
    limits = {"b": DestinationLimits(hours="night")}
    routing = settings(("a", 1), ("b", 5), ("c", 2), ("d", 2), strategy="weighted")
    p = await plan(routing, limits=limits, rng=random.Random(1))
    drawn = p.attempts[0].destinations[0]
    assert drawn != "b"
    rest = [n for n in ("c", "d", "a") if n != drawn]  # by weight, ties in configured order
    assert order(p) == [(drawn,)] + [(n,) for n in rest]
    assert p.attempts[0].reason.startswith(f"weighted: {drawn} drawn")
    assert why(p) == {"b": "closed (hours night)"}


async def test_weighted_without_weights_is_even() -> None:
    rng = random.Random(7)
    routing = settings("a", "b", strategy="weighted")
    firsts = Counter([order(await plan(routing, rng=rng))[0][0] for _ in range(4000)])
    assert abs(firsts["a"] / 4000 - 0.5) < 0.03


async def test_simultaneous_rings_every_open_destination_at_once() -> None:
    limits = {"b": DestinationLimits(hours="night")}
    p = await plan(settings("a", "b", "c", strategy="simultaneous", fallback=("d",)), limits=limits)
    assert order(p) == [("a", "c"), ("d",)]
    assert p.attempts[0].reason == "simultaneous: ring a, c"
    assert p.attempts[1].reason == "fallback #1: d"


async def test_fallback_comes_last_and_is_not_rung_twice() -> None:
    limits = {"closed-fallback": DestinationLimits(hours="night")}
    p = await plan(settings("a", "b", fallback=("b", "closed-fallback", "c")), limits=limits)
    assert order(p) == [("a",), ("b",), ("c",)]
    assert why(p) == {"closed-fallback": "closed (hours night)"}


async def test_nothing_can_take_the_call() -> None:
    limits = {"a": DestinationLimits(hours="night")}
    p = await plan(settings("a"), limits=limits)
    assert p.attempts == ()
    assert "no destination can take the call" in p.record()["route_reasons"]


async def test_stored_hour_cap_skips() -> None:
    """The per-period counts come from the one storage call; a full hour skips the destination."""
    from storage.usage import Counts, UsageSnapshot

    async def run(fn: Any) -> UsageSnapshot:
        return UsageSnapshot(destinations={"desk": Counts(hour=20, day=20, month=20)})

    limits = {"desk": DestinationLimits(caps=Caps(hour=20, day=100))}
    p = await plan(settings("desk", "mobile"), limits=limits, usage=Usage(run))
    assert order(p) == [("mobile",)]
    assert why(p) == {"desk": "cap hour 20/20"}


async def test_plan_carries_caller_id_whisper_and_ring_timeout() -> None:
    routing = settings("a", ring_timeout=35, caller_id=CallerIdMode("mask", "212XXXXXXX"),
                       whisper="Call from {campaign}, source {source}, pressed {department}{missing}")
    p = await plan(routing)
    assert p.ring_timeout == 35
    assert p.caller_id == "2125551234"
    assert p.whisper == "Call from spring, source google, pressed sales"
    record = p.record()
    assert record["caller_id_presented"] == "2125551234"
    assert "caller ID: mask 212XXXXXXX" in record["route_reasons"]


async def test_a_caller_asking_for_privacy_is_never_revealed() -> None:
    p = await plan(settings("a"), facts=make_facts(anonymous=True))
    assert p.caller_id is None
    p = await plan(settings("a", caller_id=CallerIdMode("mask", "212XXXXXXX")), facts=make_facts(anonymous=True))
    assert p.caller_id == "18005550100"


def test_render_whisper() -> None:
    facts = make_facts(quality=None, variables={"department": "2", "campaign": "spoofed"})
    assert render_whisper("{campaign} {quality}|{keyword}|{department}|{nope}|{{x}}", facts) == \
        "spring |plumber|2||{x}"


# --- configuration --------------------------------------------------------------------------------------

def top(tmp_path: Path, text: str) -> _Section:
    path = tmp_path / "ringpool.yaml"
    path.write_text(text)
    return _Section(path, load_located(path), "", 1)


KNOWN = ("sales-desk", "support-desk", "after-hours-line")
BASE = default_routing("sales-desk", 20, "after-hours-line")


def test_default_routing() -> None:
    assert BASE == RoutingSettings(destinations=(Target("sales-desk"),), ring_timeout=20,
                                   fallback=("after-hours-line",))
    assert default_routing("a", 20, "a").fallback == ()
    assert default_routing("a", 20, None).fallback == ()


def test_read_routing(tmp_path: Path) -> None:
    s = top(tmp_path, """\
routing:
  strategy: weighted
  destinations: [sales-desk, {name: support-desk, weight: 3}, {name: after-hours-line}]
  ring_timeout: 25
  caller_id: "mask:212XXXXXXX"
  whisper: "Call from {campaign}, pressed {department}"
  fallback: [after-hours-line]
""").section("routing")
    routing = read_routing(s, KNOWN, BASE)
    assert routing == RoutingSettings(
        destinations=(Target("sales-desk"), Target("support-desk", 3.0), Target("after-hours-line")),
        strategy="weighted", ring_timeout=25, caller_id=CallerIdMode("mask", "212XXXXXXX"),
        whisper="Call from {campaign}, pressed {department}", fallback=("after-hours-line",))


def test_read_routing_keeps_the_base_for_missing_keys(tmp_path: Path) -> None:
    assert read_routing(top(tmp_path, "x: 1\n").section("routing"), KNOWN, BASE) == BASE
    campaign = read_routing(top(tmp_path, "routing: {strategy: round_robin, caller_id: tracking}\n")
                            .section("routing"), KNOWN, BASE)
    node = read_routing(top(tmp_path, "route: {destinations: [support-desk]}\n").section("route"), KNOWN, campaign)
    assert node == replace(campaign, destinations=(Target("support-desk"),))
    assert node.strategy == "round_robin" and node.caller_id == CallerIdMode("tracking")


@pytest.mark.parametrize("text, line, key, message", [
    ("routing:\n  strategy: cheapest\n", 2, "routing.strategy", "expected one of priority, round_robin"),
    ("routing:\n  destinations:\n    - sales-desk\n    - nowhere\n", 4, "routing.destinations[1]",
     "no destination named 'nowhere'"),
    ("routing:\n  destinations:\n    - {name: support-desk, weight: 0}\n", 3, "routing.destinations[0].weight",
     "above 0"),
    ("routing:\n  destinations:\n    - name: support-desk\n      weight: -2\n", 4,
     "routing.destinations[0].weight", "above 0"),
    ("routing:\n  destinations:\n    - {name: support-desk, weight: heavy}\n", 3,
     "routing.destinations[0].weight", "above 0"),
    ("routing:\n  destinations:\n    - {name: support-desk, wieght: 2}\n", 3,
     "routing.destinations[0].wieght", "unknown key"),
    ("routing:\n  destinations: [sales-desk, sales-desk]\n", 2, "routing.destinations[1]", "listed twice"),
    ("routing:\n  destinations: []\n", 2, "routing.destinations", "expected a list"),
    ("routing:\n  destinations: sales-desk\n", 2, "routing.destinations", "expected a list"),
    ("routing:\n  destinations:\n    - [a]\n", 3, "routing.destinations[0]", "expected a destination name"),
    ("routing:\n  ring_timeout: 0\n", 2, "routing.ring_timeout", "out of range"),
    ("routing:\n  caller_id: mask:212XX\n", 2, "routing.caller_id", "10 or 11"),
    ("routing:\n  whisper: 'from {campaign.__class__}'\n", 2, "routing.whisper", "plain name"),
    ("routing:\n  whisper: 'from {campaign!r}'\n", 2, "routing.whisper", "plain name"),
    ("routing:\n  whisper: 'from {campaign'\n", 2, "routing.whisper", "literal braces"),
    ("routing:\n  fallback: [sales-desk, gone]\n", 2, "routing.fallback", "no destination named 'gone'"),
    ("routing:\n  fallback: [sales-desk]\n  queue: true\n", 3, "routing.queue", "unknown key"),
])
def test_read_routing_errors(tmp_path: Path, text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        read_routing(top(tmp_path, text).section("routing"), KNOWN, BASE)
    assert (err.value.line, err.value.key) == (line, key), err.value
    assert message in err.value.message
    assert err.value.file.endswith("ringpool.yaml")


def test_bids_strategy_without_buyers_loads(tmp_path: Path) -> None:
    routing = read_routing(top(tmp_path, "routing: {strategy: bids}\n").section("routing"), KNOWN, BASE)
    assert routing.strategy == "bids"


def test_read_destination_limits(tmp_path: Path) -> None:
    s = top(tmp_path, """\
name: sales-desk
host: 127.0.0.1
hours: business
regions: [IL, "312"]
caps: {concurrent: 1, hour: 20, day: 100, month: 2000}
""")
    limits = read_destination_limits(s, SCHEDULES)
    assert limits == DestinationLimits(hours="business", regions=("IL", "312"),
                                       caps=Caps(concurrent=1, hour=20, day=100, month=2000))
    assert {"hours", "regions", "caps"} <= s.used and "host" not in s.used  # the destination reader reads on
    assert read_destination_limits(top(tmp_path, "name: x\n"), SCHEDULES) == DestinationLimits()


@pytest.mark.parametrize("text, line, key, message", [
    ("name: a\nhours: lunch\n", 2, "hours", "no schedule named 'lunch'"),
    ("name: a\nregions: [IL, Narnia]\n", 2, "regions", "'Narnia' is not a region"),
    ("name: a\nregions: [\"911\"]\n", 2, "regions", "is not a region"),
    ("name: a\ncaps:\n  budget_day: 10\n", 3, "caps.budget_day", "budgets are for buyers"),
    ("name: a\ncaps:\n  concurrent: 1.5\n", 3, "caps.concurrent", "whole number"),
])
def test_read_destination_limits_errors(tmp_path: Path, text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        read_destination_limits(top(tmp_path, text), SCHEDULES)
    assert (err.value.line, err.value.key) == (line, key), err.value
    assert message in err.value.message
