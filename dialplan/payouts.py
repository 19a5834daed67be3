"""What a call earns: the revenue the advertiser (or the winning buyer) pays, the publisher's payout, and the
margin between them (seed 000, step 5: a base payout plus bonuses whose conditions combine with and/or/not).

Pure: the rules come from a campaign's ``payout:`` section, the call from its stored row once it has ended.
Amounts are Decimal cents throughout, and every line of the reckoning is kept (``Payout.items``) so a publisher
or an advertiser disputing a call can see exactly which rule paid what. The revenue and payout columns of each
item add up to the totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from math import isfinite
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, get_args

from ari_app.yaml_located import ConfigError
from dialplan.facts import Region
from dialplan.quality import BANDS, quality_band
from dialplan.regions import NUMBER_TYPES, matches_region, valid_region_pattern

if TYPE_CHECKING:
    from ari_app.config import _Section

CENT = Decimal("0.01")
MAX_AMOUNT = 1_000_000
ConditionKind = Literal["talk_seconds", "region", "converted", "quality", "number_type", "all", "any", "not"]
CONDITIONS: tuple[str, ...] = get_args(ConditionKind)
# The conditions that take a list of values: how each value is checked, and what to say when it is wrong.
VALUES: dict[str, tuple[Callable[[str], bool], str]] = {
    "region": (valid_region_pattern, "not a region such as US, US-NY, CA-ON or 312"),
    "quality": (BANDS.__contains__, f"expected some of {', '.join(BANDS)}"),
    "number_type": (NUMBER_TYPES.__contains__, "not a number type such as mobile, fixed_line or toll_free"),
}


@dataclass(frozen=True)
class Condition:
    """One test on the ended call. ``value`` by kind: talk_seconds an int (at least that many seconds from the
    destination's answer), region and quality and number_type a tuple of strings (any of them), converted a
    bool, all/any a tuple of Conditions, not a one-Condition tuple."""

    kind: ConditionKind
    value: Any

    def met(self, call: Mapping[str, Any], region: Region | None) -> bool:
        match self.kind:
            case "talk_seconds":
                return (call.get("talk_seconds") or 0) >= self.value
            case "region":
                return matches_region(region, self.value)
            case "converted":
                return _converted(call) is self.value
            case "quality":
                return call.get("quality") is not None and quality_band(int(call["quality"])) in self.value
            case "number_type":
                return call.get("number_type") in self.value
            case "all":
                return all(c.met(call, region) for c in self.value)
            case "any":
                return any(c.met(call, region) for c in self.value)
            case "not":
                return not self.value[0].met(call, region)
        raise AssertionError(self.kind)

    def describe(self) -> str:
        match self.kind:
            case "talk_seconds":
                return f"talk >= {self.value} s"
            case "converted":
                return "converted" if self.value else "not converted"
            case "all" | "any":
                joiner = " and " if self.kind == "all" else " or "
                return "(" + joiner.join(c.describe() for c in self.value) + ")"
            case "not":
                return f"not {self.value[0].describe()}"
        return f"{self.kind} in {', '.join(self.value)}"


@dataclass(frozen=True)
class Bonus:
    amount: Decimal
    when: Condition


@dataclass(frozen=True)
class Repeat:
    """A caller who called this campaign within ``window`` seconds earns ``credit`` of the usual amounts
    (seed 000: "0.00 price for repeat callers")."""

    window: int
    credit: Decimal


@dataclass(frozen=True)
class PayoutRules:
    revenue: Decimal = Decimal(0)
    base: Decimal = Decimal(0)
    qualify: Condition | None = None  # None: every call that is not spam qualifies
    bonuses: tuple[Bonus, ...] = ()
    sale_share: Decimal = Decimal(0)  # of the posted sale_amount, 0-1
    repeat: Repeat | None = None


@dataclass(frozen=True)
class Payout:
    revenue: float
    payout: float
    margin: float
    items: tuple[dict[str, Any], ...]  # {item, detail, revenue, payout[, met]}: signed contributions to the totals

    def record(self) -> dict[str, Any]:
        """The call record's payout columns."""
        return {"revenue": self.revenue, "payout": self.payout, "margin": self.margin,
                "payout_details": {"items": [dict(i) for i in self.items]}}


def compute_payout(rules: PayoutRules, call: Mapping[str, Any], *, region: Region | None,
                   repeat_within_window: bool, winning_bid: float | None = None) -> Payout:
    """``call`` is the ended call's row (talk_seconds, spam, converted or converted_at, sale_amount, quality,
    number_type); ``repeat_within_window``: the caller called this campaign within ``rules.repeat.window``."""
    if call.get("spam"):
        return _total([_item("spam", "the call was marked spam: no revenue, no payout")])
    items: list[dict[str, Any]] = []
    if rules.qualify is not None:
        if not rules.qualify.met(call, region):
            return _total([_item("qualify", f"{rules.qualify.describe()}: not met, no revenue, no payout", met=False)])
        items.append(_item("qualify", rules.qualify.describe(), met=True))
    if winning_bid is not None:
        revenue = _cents(Decimal(str(winning_bid)))
        items.append(_item("revenue", "the winning buyer's bid", revenue=revenue))
    else:
        items.append(_item("revenue", "the campaign's revenue per qualified call", revenue=rules.revenue))
    items.append(_item("base", "base payout", payout=rules.base))
    for bonus in rules.bonuses:
        met = bonus.when.met(call, region)
        items.append(_item("bonus", f"{bonus.amount} if {bonus.when.describe()}", met=met,
                           payout=bonus.amount if met else Decimal(0)))
    if rules.sale_share:
        sale = Decimal(str(call.get("sale_amount") or 0))
        share = f"{(rules.sale_share * 100).normalize():f}% of the sale"
        items.append(_item("sale_share", f"{share} amount {sale:.2f}" if sale else f"{share}: none posted",
                           payout=_cents(sale * rules.sale_share)))
    if rules.repeat is not None and repeat_within_window and rules.repeat.credit != 1:
        revenue, payout = _sums(items)
        keep = rules.repeat.credit
        items.append(_item("repeat", f"repeat caller within {rules.repeat.window} s: credit {keep.normalize():f}",
                           revenue=_cents(revenue * keep) - revenue, payout=_cents(payout * keep) - payout))
    return _total(items)


def _converted(call: Mapping[str, Any]) -> bool:
    """The row has converted_at; a caller may also pass a plain converted flag."""
    return bool(call.get("converted") or call.get("converted_at"))


def _item(item: str, detail: str, *, revenue: Decimal = Decimal(0), payout: Decimal = Decimal(0),
          met: bool | None = None) -> dict[str, Any]:
    line: dict[str, Any] = {"item": item, "detail": detail, "revenue": revenue, "payout": payout}
    if met is not None:
        line["met"] = met
    return line


def _sums(items: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    return sum((i["revenue"] for i in items), Decimal(0)), sum((i["payout"] for i in items), Decimal(0))


def _total(items: list[dict[str, Any]]) -> Payout:
    revenue, payout = _sums(items)
    lines = tuple({**i, "revenue": float(i["revenue"]), "payout": float(i["payout"])} for i in items)
    return Payout(float(revenue), float(payout), float(revenue - payout), lines)


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- configuration ----------------------------------------------------------------------------------------------


def read_payout(s: "_Section") -> PayoutRules | None:
    """A campaign's ``payout:`` section; None when it has none (the campaign pays and earns nothing per call)."""
    if not s.data:
        return None
    rules = PayoutRules(
        revenue=_amount(s, "revenue"), base=_amount(s, "base"),
        qualify=_condition(s.section("qualify")) if "qualify" in s.data else None,
        bonuses=tuple(_bonus(item) for item, _line in s.items("bonuses")),
        sale_share=_share(s, "sale_share"),
        repeat=_repeat(s.section("repeat")) if "repeat" in s.data else None)
    s.reject_unknown()
    return rules


def _amount(s: "_Section", name: str) -> Decimal:
    value = s.raw(name, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not isfinite(value):
        raise s.error(name, "expected an amount such as 5 or 2.50")
    if value < 0:
        raise s.error(name, f"{value} is negative: amounts are 0 or more")
    if value > MAX_AMOUNT:
        raise s.error(name, f"{value} is above {MAX_AMOUNT}")
    return _cents(Decimal(str(value)))


def _share(s: "_Section", name: str) -> Decimal:
    value = s.raw(name, 0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise s.error(name, "expected a share from 0 to 1, e.g. 0.1 for 10%")
    return Decimal(str(value))


def _bonus(s: "_Section") -> Bonus:
    bonus = Bonus(amount=_amount(s, "amount"), when=_condition(s.section("when", optional=False)))
    s.reject_unknown()
    return bonus


def _repeat(s: "_Section") -> Repeat:
    repeat = Repeat(window=s.integer("window", 86400, low=1, high=365 * 86400), credit=_share(s, "credit"))
    s.reject_unknown()
    return repeat


def _condition(s: "_Section") -> Condition:
    """A mapping of conditions; several keys in one mapping must all be met."""
    if not s.data:
        raise ConfigError(s.file, s.data.line, s.key, f"needs a condition: one of {', '.join(CONDITIONS)}")
    for name in s.data:
        if name not in CONDITIONS:
            raise s.error(str(name), f"unknown condition: expected one of {', '.join(CONDITIONS)}")
    parts = tuple(_one_condition(s, str(name)) for name in s.data)
    return parts[0] if len(parts) == 1 else Condition("all", parts)


def _one_condition(s: "_Section", name: str) -> Condition:
    match name:
        case "talk_seconds":
            return Condition("talk_seconds", s.integer(name, low=0, high=86400))
        case "converted":
            return Condition("converted", s.boolean(name, True))
        case "region" | "number_type" | "quality":
            values = tuple(s.string_list(name))
            if not values:
                raise s.error(name, "expected at least one value")
            valid, hint = VALUES[name]
            if bad := [v for v in values if not valid(v)]:
                raise s.error(name, f"{bad[0]!r}: {hint}")
            return Condition(name, values)
        case "not":
            return Condition("not", (_condition(s.section(name, optional=False)),))
    parts = s.items(name)
    if not parts:
        raise s.error(name, "expected a list of conditions")
    return Condition("all" if name == "all" else "any", tuple(_condition(item) for item, _line in parts))
