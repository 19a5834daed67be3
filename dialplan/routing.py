"""Where a call goes, in what order: the routing strategies of seed 000 (failover in order, round robin,
weighted, ring all at once, "choose best" by buyers' bids) over destinations filtered by hours, region and caps.

plan_route returns a Plan: the attempts to make one after another (the next when one does not answer or is
busy), and why every destination or buyer left out was left out, so the call record explains itself. The only
waits are the one storage read of the caps' counts and the buyers' real-time bids, each bounded by its
buyer's timeout; everything else is a pure function of the settings, the facts and that snapshot.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from string import Formatter
from typing import TYPE_CHECKING, Any

from ari_app.yaml_located import ConfigError, LocatedList, LocatedMap
from dialplan.bids import Bidder, BidAnswer, Buyer
from dialplan.caller_id import CallerIdMode, parse_caller_id, present_caller_id
from dialplan.caps import Caps, Usage, check, read_caps
from dialplan.facts import CallFacts, Region
from dialplan.hours import Schedule
from dialplan.regions import matches_region, valid_region_pattern
from storage.usage import UsageSnapshot

if TYPE_CHECKING:
    from ari_app.config import _Section

STRATEGIES = ("priority", "round_robin", "weighted", "simultaneous", "bids")
MAX_WHISPER = 500
_PLACEHOLDER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_RANDOM = random.Random()


@dataclass(frozen=True)
class Target:
    name: str
    weight: float = 1.0  # only the weighted strategy reads it


@dataclass(frozen=True)
class DestinationLimits:
    """When and for whom a destination takes calls, and how many (a destination's optional keys)."""

    hours: str | None = None  # a schedule name; None: always open
    regions: tuple[str, ...] = ()  # region patterns; empty: every caller
    caps: Caps = Caps()


@dataclass(frozen=True)
class RoutingSettings:
    destinations: tuple[Target, ...]
    strategy: str = "priority"
    ring_timeout: int = 20
    caller_id: CallerIdMode = CallerIdMode()
    whisper: str | None = None  # played to the destination before bridging; placeholders: render_whisper
    fallback: tuple[str, ...] = ()  # tried after the strategy's destinations


@dataclass(frozen=True)
class Attempt:
    destinations: tuple[str, ...]  # more than one: ring all at once, the first to answer takes the call
    buyer: str | None = None
    bid: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Plan:
    strategy: str
    attempts: tuple[Attempt, ...]  # in order: the next one when the previous does not answer or is busy
    skipped: tuple[dict[str, Any], ...]  # {kind: destination|buyer, name, why}
    bids: tuple[dict[str, Any], ...] = ()  # {buyer, amount, source: static|realtime, eligible, reason, ...}
    ring_timeout: int = 20
    caller_id: str | None = None  # what the destination sees; None: withheld
    caller_id_reason: str = ""
    whisper: str | None = None  # rendered
    notes: tuple[str, ...] = ()  # e.g. "no eligible buyer"

    def record(self) -> dict[str, Any]:
        """The call record's routing columns (CallStore.update_call JSON-encodes the lists)."""
        reasons = [a.reason for a in self.attempts] + list(self.notes)
        reasons += [f"skipped {s['kind']} {s['name']}: {s['why']}" for s in self.skipped]
        reasons.append(f"caller ID: {self.caller_id_reason}")
        return {"route_strategy": self.strategy, "route_reasons": reasons,
                "bids": [dict(b) for b in self.bids] if self.strategy == "bids" else None,
                "caller_id_presented": self.caller_id}


def default_routing(destination: str, ring_timeout: int, fallback: str | None) -> RoutingSettings:
    """A campaign's routing before its `routing:` section: its destination, then its fallback destination."""
    return RoutingSettings(destinations=(Target(destination),), ring_timeout=ring_timeout,
                           fallback=(fallback,) if fallback and fallback != destination else ())


def render_whisper(template: str, facts: CallFacts) -> str:
    """The whisper text: {campaign}, {source}, {medium}, {keyword}, {quality} and any IVR variable by name;
    an unknown or empty one becomes nothing. Built from the parsed template, never str.format, so a template
    cannot reach into objects."""
    values: dict[str, Any] = {**facts.variables, "campaign": facts.campaign,
                              "source": facts.session.get("source"), "medium": facts.session.get("medium"),
                              "keyword": facts.session.get("keyword"), "quality": facts.quality}
    parts = []
    for literal, name, _spec, _conversion in Formatter().parse(template):
        parts.append(literal)
        if name is not None and values.get(name) is not None:
            parts.append(str(values[name]))
    return "".join(parts)


# --- configuration -------------------------------------------------------------------------------------------

def read_destination_limits(s: _Section, schedules: Collection[str]) -> DestinationLimits:
    """A destination's `hours`, `regions` and `caps` keys (marked used; the destination reader rejects the
    rest)."""
    hours = s.string("hours", None)
    if hours is not None and hours not in schedules:
        raise s.error("hours", f"no schedule named {hours!r}")
    return DestinationLimits(hours=hours, regions=_regions(s), caps=read_caps(s.section("caps"), budgets=False))


def read_routing(s: _Section, destinations: Collection[str], base: RoutingSettings) -> RoutingSettings:
    """A campaign's `routing:` section over default_routing(...), or an IVR route node's keys over the
    campaign's routing: only the keys present change."""
    values: dict[str, Any] = {}
    if "strategy" in s.data:
        values["strategy"] = s.string("strategy")
        if values["strategy"] not in STRATEGIES:
            raise s.error("strategy", f"{values['strategy']!r}: expected one of {', '.join(STRATEGIES)}")
    if "destinations" in s.data:
        values["destinations"] = _targets(s, destinations)
    if "ring_timeout" in s.data:
        values["ring_timeout"] = s.integer("ring_timeout", low=1, high=300)
    if "caller_id" in s.data:
        try:
            values["caller_id"] = parse_caller_id(s.raw("caller_id"))
        except ValueError as exc:
            raise s.error("caller_id", str(exc)) from None
    if "whisper" in s.data:
        values["whisper"] = s.string("whisper")
        problem = _whisper_problem(values["whisper"])
        if problem:
            raise s.error("whisper", problem)
    if "fallback" in s.data:
        values["fallback"] = tuple(s.string_list("fallback"))
        for name in values["fallback"]:
            if name not in destinations:
                raise s.error("fallback", f"no destination named {name!r}")
    s.reject_unknown()
    return replace(base, **values)


def _regions(s: _Section) -> tuple[str, ...]:
    regions = s.string_list("regions")
    for pattern in regions:
        if not valid_region_pattern(pattern):
            raise s.error("regions", f"{pattern!r} is not a region: a country (US), state (IL, US-IL) or "
                                     "area code (312)")
    return tuple(regions)


def _targets(s: _Section, known: Collection[str]) -> tuple[Target, ...]:
    """`destinations: [sales-desk, {name: support-desk, weight: 3}]`, each error at its item's line."""
    from ari_app.config import _Section

    raw = s.raw("destinations")
    if not isinstance(raw, LocatedList) or not raw:
        raise s.error("destinations", "expected a list of destination names or {name, weight}")
    targets: list[Target] = []
    for i, item in enumerate(raw):
        line, key = raw.item_lines[i], f"{s.key}.destinations[{i}]"
        if isinstance(item, LocatedMap):
            entry = _Section(s.file, item, key, line)
            name = entry.string("name")
            weight = entry.raw("weight", 1)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1_000_000:
                raise entry.error("weight", f"expected a weight above 0, got {weight!r}")
            entry.reject_unknown()
            target = Target(name, float(weight))
        elif isinstance(item, str):
            target = Target(item)
        else:
            raise ConfigError(s.file, line, key, "expected a destination name or {name, weight}")
        if target.name not in known:
            raise ConfigError(s.file, line, key, f"no destination named {target.name!r}")
        if any(t.name == target.name for t in targets):
            raise ConfigError(s.file, line, key, f"{target.name!r} is listed twice")
        targets.append(target)
    return tuple(targets)


def _whisper_problem(template: str) -> str | None:
    if len(template) > MAX_WHISPER:
        return f"at most {MAX_WHISPER} characters"
    try:
        fields = [(name, spec, conv) for _lit, name, spec, conv in Formatter().parse(template) if name is not None]
    except ValueError as exc:
        return f"{exc} (write {{{{ and }}}} for literal braces)"
    for name, spec, conv in fields:
        if not _PLACEHOLDER_RE.match(name) or spec or conv:
            return f"{{{name}}}: a placeholder is a plain name such as {{campaign}} or an IVR variable"
    return None


# --- planning ------------------------------------------------------------------------------------------------

@dataclass
class _Checks:
    """Eligibility of destinations and buyers for one call, at one moment."""

    facts: CallFacts
    limits: Mapping[str, DestinationLimits]
    schedules: Mapping[str, Schedule]
    now: datetime
    snap: UsageSnapshot = field(default_factory=UsageSnapshot)

    def closed(self, hours: str | None) -> str | None:
        if hours is None:
            return None
        schedule = self.schedules.get(hours)
        if schedule is None:
            return f"unknown schedule {hours!r}"
        return None if schedule.is_open(self.now) else f"closed (hours {hours})"

    def out_of_region(self, patterns: tuple[str, ...]) -> str | None:
        if not patterns or matches_region(self.facts.region, patterns):
            return None
        return f"out of region: caller {_where(self.facts.region)}, wanted {', '.join(patterns)}"

    def destination(self, name: str) -> str | None:
        """Why the destination cannot take this call now, or None."""
        limits = self.limits.get(name, DestinationLimits())
        return (self.closed(limits.hours) or self.out_of_region(limits.regions)
                or check(limits.caps, self.snap.destination(name)))

    def buyer_filters(self, buyer: Buyer) -> str | None:
        """The checks that need no counts: campaign, quality, region, hours."""
        if buyer.campaigns and self.facts.campaign not in buyer.campaigns:
            return f"does not buy campaign {self.facts.campaign}"
        quality = self.facts.quality
        if buyer.min_quality is not None and (quality is None or quality < buyer.min_quality):
            return f"below min quality: {'unknown' if quality is None else quality} < {buyer.min_quality}"
        return self.out_of_region(buyer.regions) or self.closed(buyer.hours)

    def buyer_room(self, buyer: Buyer) -> tuple[str | None, tuple[str, ...]]:
        """(why the buyer cannot take a call now, or None; its destinations that can)."""
        problem = check(buyer.caps, self.snap.buyer(buyer.name))
        if problem:
            return problem, ()
        usable = tuple(d for d in buyer.destinations if self.destination(d) is None)
        if not usable:
            why = "; ".join(f"{d}: {self.destination(d)}" for d in buyer.destinations)
            return f"none of its destinations can take the call ({why})", ()
        return None, usable


def _where(region: Region | None) -> str:
    if region is None:
        return "region unknown"
    parts = [p for p in (region.country, region.state, region.area_code) if p]
    return " ".join(parts) or "region unknown"


async def plan_route(settings: RoutingSettings, facts: CallFacts, *, destinations: Mapping[str, DestinationLimits],
                     buyers: Mapping[str, Buyer], schedules: Mapping[str, Schedule], usage: Usage,
                     bidder: Bidder | None, now: datetime, rng: random.Random | None = None) -> Plan:
    """The attempts for this call. ``destinations``: every configured destination's limits (one without an
    entry has none); ``bidder``: how real-time bids are asked (None: static bids only); ``rng``: the weighted
    strategy's draw (tests seed it). Call usage.start for the first attempt's destinations (and buyer) right
    after this returns, before awaiting anything, so the next call's plan sees them."""
    checks = _Checks(facts, destinations, schedules, now)
    skipped: dict[tuple[str, str], str] = {}
    bid_log: list[dict[str, Any]] = []
    notes: list[str] = []
    wanted = [t.name for t in settings.destinations] + list(settings.fallback)
    bidding: list[Buyer] = []
    if settings.strategy == "bids":
        for buyer in sorted(buyers.values(), key=lambda b: b.name):
            why = checks.buyer_filters(buyer)
            if why:
                skipped[("buyer", buyer.name)] = why
                bid_log += _unasked(buyer, why)
            else:
                bidding.append(buyer)
        wanted += [d for b in bidding for d in b.destinations]
    names = list(dict.fromkeys(wanted))
    checks.snap = await usage.snapshot(names, [b.name for b in bidding], now)

    attempts: list[Attempt] = []
    if settings.strategy == "bids":
        attempts = await _auction(bidding, facts, checks, usage, bidder, names, skipped, bid_log)
        if not attempts:
            notes.append("bids: no eligible buyer")
        # unsold calls go to the routing's own destinations, in order, before the fallback
        attempts += _in_order(settings.destinations, checks, skipped, "unsold: priority", attempts)
    elif settings.strategy == "simultaneous":
        ready = [t.name for t in settings.destinations if _usable(t.name, checks, skipped)]
        if ready:
            attempts.append(Attempt(tuple(ready), reason=f"simultaneous: ring {', '.join(ready)}"))
    elif settings.strategy == "round_robin":
        order = list(settings.destinations)
        start = usage.turn((facts.campaign, tuple(t.name for t in order))) % len(order)
        attempts += _in_order(tuple(order[start:] + order[:start]), checks, skipped, "round robin", attempts)
    elif settings.strategy == "weighted":
        attempts += _weighted(settings.destinations, checks, skipped, rng or _RANDOM)
    else:
        attempts += _in_order(settings.destinations, checks, skipped, "priority", attempts)
    attempts += _in_order(tuple(Target(n) for n in settings.fallback), checks, skipped, "fallback", attempts)
    if not attempts:
        notes.append("no destination can take the call")

    caller, caller_reason = present_caller_id(settings.caller_id, caller=None if facts.anonymous else
                                              facts.caller_number, tracking=facts.dialed_number)
    return Plan(strategy=settings.strategy, attempts=tuple(attempts),
                skipped=tuple({"kind": k, "name": n, "why": why} for (k, n), why in skipped.items()),
                bids=tuple(bid_log), ring_timeout=settings.ring_timeout, caller_id=caller,
                caller_id_reason=caller_reason,
                whisper=render_whisper(settings.whisper, facts) if settings.whisper else None, notes=tuple(notes))


def _usable(name: str, checks: _Checks, skipped: dict[tuple[str, str], str]) -> bool:
    why = checks.destination(name)
    if why:
        skipped.setdefault(("destination", name), why)
    return why is None


def _in_order(targets: tuple[Target, ...], checks: _Checks, skipped: dict[tuple[str, str], str], label: str,
              earlier: list[Attempt]) -> list[Attempt]:
    """One attempt per usable target, in order, leaving out destinations an earlier attempt already rings."""
    taken = {d for a in earlier for d in a.destinations}
    result = []
    for target in targets:
        if target.name not in taken and _usable(target.name, checks, skipped):
            taken.add(target.name)
            result.append(Attempt((target.name,), reason=f"{label} #{len(result) + 1}: {target.name}"))
    return result


def _weighted(targets: tuple[Target, ...], checks: _Checks, skipped: dict[tuple[str, str], str],
              rng: random.Random) -> list[Attempt]:
    """A weighted draw among the usable destinations first, then the others by weight as failover."""
    ready = [t for t in targets if _usable(t.name, checks, skipped)]
    if not ready:
        return []
    first = rng.choices(ready, weights=[t.weight for t in ready])[0]
    total = sum(t.weight for t in ready)
    rest = sorted((t for t in ready if t is not first), key=lambda t: -t.weight)  # stable: config order on ties
    return ([Attempt((first.name,), reason=f"weighted: {first.name} drawn (weight {first.weight:g} of {total:g})")]
            + [Attempt((t.name,), reason=f"weighted failover: {t.name} (weight {t.weight:g})") for t in rest])


# --- bids ----------------------------------------------------------------------------------------------------

def _unasked(buyer: Buyer, why: str) -> list[dict[str, Any]]:
    """The bid entries of a buyer left out before asking."""
    return [{"buyer": buyer.name, "amount": buyer.bid if source == "static" else None, "source": source,
             "eligible": False, "reason": why}
            for source, present in (("static", buyer.bid is not None), ("realtime", buyer.url is not None))
            if present]


async def _ask(bidder: Bidder | None, buyer: Buyer, payload: dict[str, Any]) -> tuple[BidAnswer, float]:
    """One real-time bid, never longer than the buyer's timeout whatever the bidder does."""
    if bidder is None:
        return BidAnswer(error="real-time bids are not enabled"), 0.0
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(buyer.timeout):
            answer = await bidder.request(buyer, payload)
    except TimeoutError:
        answer = BidAnswer(error=f"no answer within {buyer.timeout:g} s")
    except Exception as exc:  # a broken bidder costs its own bid, never the call
        answer = BidAnswer(error=f"bidder failed: {type(exc).__name__}")
    return answer, round(loop.time() - started, 3)


async def _auction(bidding: list[Buyer], facts: CallFacts, checks: _Checks, usage: Usage, bidder: Bidder | None,
                   names: list[str], skipped: dict[tuple[str, str], str],
                   bid_log: list[dict[str, Any]]) -> list[Attempt]:
    """Ask every buyer with room at once, then rank the usable bids: the highest first; ties go to the higher
    static bid, then by name. A real-time answer replaces the static bid; when it fails (timeout, error,
    a destination not the buyer's) the static bid stands; when it declines, the buyer is out."""
    full = {b.name: why for b in bidding if (why := checks.buyer_room(b)[0])}
    asking = [b for b in bidding if b.url is not None and b.name not in full]
    public = facts.public()
    answers = dict(zip((b.name for b in asking),
                       await asyncio.gather(*(_ask(bidder, b, {**public, "buyer": b.name}) for b in asking))))
    checks.snap = usage.with_live(checks.snap, names, [b.name for b in bidding])  # calls started meanwhile

    offers: list[tuple[float, float, str, str, str]] = []  # (amount, static, buyer, destination, source)
    for buyer in bidding:
        why, usable = checks.buyer_room(buyer)
        why = full.get(buyer.name) or why
        if why:
            skipped[("buyer", buyer.name)] = why
            bid_log += _unasked(buyer, why)
            continue
        offer = _realtime_offer(buyer, answers.get(buyer.name), usable, checks, bid_log)
        if offer is None and buyer.bid is not None and not _declined(answers.get(buyer.name)):
            offer = _static_offer(buyer, usable, checks, bid_log)
        elif buyer.bid is not None:
            bid_log.append({"buyer": buyer.name, "amount": buyer.bid, "source": "static", "eligible": False,
                            "reason": "replaced by the real-time answer"})
        if offer is None:
            skipped[("buyer", buyer.name)] = "no usable bid"
        else:
            offers.append(offer)
    offers.sort(key=lambda o: (-o[0], -o[1], o[2]))
    return [Attempt((dest,), buyer=name, bid=amount, reason=f"bid #{rank}: {name} {amount:.2f} ({source}) -> {dest}")
            for rank, (amount, _static, name, dest, source) in enumerate(offers, 1)]


def _declined(asked: tuple[BidAnswer, float] | None) -> bool:
    return asked is not None and asked[0].error is None and asked[0].amount is None


def _realtime_offer(buyer: Buyer, asked: tuple[BidAnswer, float] | None, usable: tuple[str, ...], checks: _Checks,
                    bid_log: list[dict[str, Any]]) -> tuple[float, float, str, str, str] | None:
    if asked is None:
        return None
    answer, seconds = asked
    entry: dict[str, Any] = {"buyer": buyer.name, "amount": answer.amount, "source": "realtime",
                             "eligible": False, "seconds": seconds}
    if answer.destination is not None:
        entry["destination"] = answer.destination
    bid_log.append(entry)
    if answer.error:
        entry["reason"] = answer.error
        return None
    if answer.amount is None:
        entry["reason"] = "declined"
        return None
    destination = answer.destination or usable[0]
    if destination not in buyer.destinations:
        entry["reason"] = f"rejected: {destination!r} is not one of {', '.join(buyer.destinations)}"
        return None
    if destination not in usable:
        entry["reason"] = f"rejected: {destination} {checks.destination(destination)}"
        return None
    over = check(buyer.caps, checks.snap.buyer(buyer.name), cost=answer.amount)
    if over:
        entry["reason"] = over
        return None
    entry.update(eligible=True, reason="real-time bid", destination=destination)
    return answer.amount, buyer.bid or 0.0, buyer.name, destination, "realtime"


def _static_offer(buyer: Buyer, usable: tuple[str, ...], checks: _Checks,
                  bid_log: list[dict[str, Any]]) -> tuple[float, float, str, str, str] | None:
    assert buyer.bid is not None
    over = check(buyer.caps, checks.snap.buyer(buyer.name), cost=buyer.bid)
    bid_log.append({"buyer": buyer.name, "amount": buyer.bid, "source": "static", "eligible": over is None,
                    "reason": over or "static bid", "destination": usable[0]})
    return None if over else (buyer.bid, buyer.bid, buyer.name, usable[0], "static")
