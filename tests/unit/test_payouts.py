"""dialplan.payouts: revenue, publisher payout and margin per call, from a campaign's payout rules."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ari_app.config import _Section
from ari_app.yaml_located import ConfigError, load_located
from dialplan.facts import Region
from dialplan.payouts import Bonus, Condition, Payout, PayoutRules, Repeat, compute_payout, read_payout

CHICAGO = Region("US", "IL", "312", "Chicago, IL")
LA = Region("US", "CA", "213", "Los Angeles, CA")

SPEC = """\
  revenue: 20.0
  base: 5.0
  qualify: {talk_seconds: 30}
  bonuses:
    - {amount: 3.0, when: {talk_seconds: 120}}
    - {amount: 2.0, when: {region: [IL, US-NY]}}
    - {amount: 5.0, when: {converted: true}}
    - {amount: 1.0, when: {quality: high}}
    - {amount: 2.0, when: {all: [{region: [IL]}, {talk_seconds: 60}]}}
  sale_share: 0.1
  repeat: {window: 86400, credit: 0.0}
"""


def section(tmp_path: Path, body: str) -> _Section:
    path = tmp_path / "ringpool.yaml"
    path.write_text("campaign: spring\npayout:\n" + body, encoding="utf-8")
    return _Section(path, load_located(path), "", 1).section("payout")


def rules(tmp_path: Path, body: str = SPEC) -> PayoutRules:
    result = read_payout(section(tmp_path, body))
    assert result is not None
    return result


def call(**kw: Any) -> dict[str, Any]:
    return {"talk_seconds": 45.0, "disposition": "answered", "spam": 0, "converted_at": None, "sale_amount": None,
            "quality": 50, "number_type": "fixed_line_or_mobile"} | kw


def pay(r: PayoutRules, row: dict[str, Any], *, region: Region | None = LA, repeat: bool = False,
        bid: float | None = None) -> Payout:
    return compute_payout(r, row, region=region, repeat_within_window=repeat, winning_bid=bid)


def totals(p: Payout) -> tuple[float, float, float]:
    return p.revenue, p.payout, p.margin


def test_read_the_documented_section(tmp_path: Path) -> None:
    r = rules(tmp_path)
    assert (r.revenue, r.base, r.sale_share) == (Decimal("20.00"), Decimal("5.00"), Decimal("0.1"))
    assert r.qualify == Condition("talk_seconds", 30)
    assert r.bonuses[1] == Bonus(Decimal("2.00"), Condition("region", ("IL", "US-NY")))
    assert r.bonuses[4].when == Condition("all", (Condition("region", ("IL",)), Condition("talk_seconds", 60)))
    assert r.repeat == Repeat(86400, Decimal("0.0"))


def test_no_section_no_rules(tmp_path: Path) -> None:
    path = tmp_path / "ringpool.yaml"
    path.write_text("campaign: spring\n", encoding="utf-8")
    assert read_payout(_Section(path, load_located(path), "", 1).section("payout")) is None


def test_a_qualified_call_earns_revenue_and_the_base(tmp_path: Path) -> None:
    p = pay(rules(tmp_path), call())
    assert totals(p) == (20.0, 5.0, 15.0)
    lines = {i["item"]: i for i in p.items if i["item"] != "bonus"}
    assert lines["qualify"] == {"item": "qualify", "detail": "talk >= 30 s", "revenue": 0.0, "payout": 0.0,
                                "met": True}
    assert lines["revenue"]["revenue"] == 20.0 and lines["base"]["payout"] == 5.0
    assert [i["met"] for i in p.items if i["item"] == "bonus"] == [False] * 5  # every bonus listed, met or not
    assert lines["sale_share"]["detail"] == "10% of the sale: none posted"


def test_a_call_that_does_not_qualify_earns_nothing(tmp_path: Path) -> None:
    for row in (call(talk_seconds=29.9), call(talk_seconds=None, disposition="no_answer")):
        p = pay(rules(tmp_path), row)
        assert totals(p) == (0.0, 0.0, 0.0)
        assert p.items == ({"item": "qualify", "detail": "talk >= 30 s: not met, no revenue, no payout",
                            "revenue": 0.0, "payout": 0.0, "met": False},)


def test_spam_earns_nothing_and_says_why(tmp_path: Path) -> None:
    p = pay(rules(tmp_path), call(spam=1, talk_seconds=600, converted_at="2026-03-02T10:00:00Z"), bid=50.0)
    assert totals(p) == (0.0, 0.0, 0.0)
    assert [i["item"] for i in p.items] == ["spam"] and "spam" in p.items[0]["detail"]


def bonus(when: Condition, amount: str = "3") -> PayoutRules:
    return PayoutRules(revenue=Decimal(10), base=Decimal(1), bonuses=(Bonus(Decimal(amount), when),))


@pytest.mark.parametrize("when, row, region, met", [
    (Condition("talk_seconds", 120), call(talk_seconds=120), LA, True),
    (Condition("talk_seconds", 120), call(talk_seconds=119.9), LA, False),
    (Condition("region", ("IL", "US-NY")), call(), CHICAGO, True),
    (Condition("region", ("IL", "US-NY")), call(), LA, False),
    (Condition("region", ("IL",)), call(), None, False),
    (Condition("converted", True), call(converted_at="2026-03-02T10:00:00Z"), LA, True),
    (Condition("converted", True), call(converted=1), LA, True),
    (Condition("converted", True), call(), LA, False),
    (Condition("converted", False), call(), LA, True),
    (Condition("quality", ("high",)), call(quality=70), LA, True),
    (Condition("quality", ("high",)), call(quality=69), LA, False),
    (Condition("quality", ("medium", "low")), call(quality=10), LA, True),
    (Condition("quality", ("low",)), call(quality=None), LA, False),
    (Condition("number_type", ("mobile",)), call(number_type="mobile"), LA, True),
    (Condition("number_type", ("mobile",)), call(), LA, False),
])
def test_each_condition(when: Condition, row: dict[str, Any], region: Region | None, met: bool) -> None:
    p = pay(bonus(when), row, region=region)
    line = p.items[-1]
    assert line["item"] == "bonus" and line["met"] is met
    assert p.payout == (4.0 if met else 1.0) and line["payout"] == (3.0 if met else 0.0)


def test_all_any_not_combine(tmp_path: Path) -> None:
    r = rules(tmp_path, """\
  revenue: 10
  bonuses:
    - {amount: 2.0, when: {all: [{region: [IL]}, {talk_seconds: 60}]}}
    - {amount: 1.0, when: {any: [{region: [IL]}, {converted: true}]}}
    - {amount: 0.5, when: {not: {number_type: [mobile, voip]}}}
    - {amount: 0.25, when: {region: [IL], talk_seconds: 60}}
    - {amount: 0.1, when: {not: {any: [{quality: low}, {all: [{converted: false}, {talk_seconds: 300}]}]}}}
""")
    met = lambda p: [i["met"] for i in p.items if i["item"] == "bonus"]  # noqa: E731
    assert met(pay(r, call(talk_seconds=60), region=CHICAGO)) == [True, True, True, True, True]
    assert met(pay(r, call(talk_seconds=59), region=CHICAGO)) == [False, True, True, False, True]
    assert met(pay(r, call(talk_seconds=300, number_type="voip", converted=1))) == [False, True, False, False, True]
    assert met(pay(r, call(talk_seconds=300, quality=80))) == [False, False, True, False, False]
    p = pay(r, call(talk_seconds=60), region=CHICAGO)
    assert p.payout == 3.85 and p.margin == 6.15
    assert [i["detail"] for i in p.items][-2:] == [
        "0.25 if (region in IL and talk >= 60 s)",
        "0.10 if not (quality in low or (not converted and talk >= 300 s))"]


def test_the_documented_rules_on_a_good_call(tmp_path: Path) -> None:
    row = call(talk_seconds=130, converted_at="2026-03-02T10:00:00Z", quality=75, sale_amount=199.99)
    p = pay(rules(tmp_path), row, region=CHICAGO)
    # base 5 + 3 (long) + 2 (region) + 5 (converted) + 1 (high) + 2 (IL and 60 s) + 20.00 (10% of 199.99)
    assert totals(p) == (20.0, 38.0, -18.0)
    assert p.items[-1] == {"item": "sale_share", "detail": "10% of the sale amount 199.99", "revenue": 0.0,
                           "payout": 20.0}


@pytest.mark.parametrize("credit, expected", [("0", (0.0, 0.0, 0.0)), ("0.5", (10.0, 4.0, 6.0)),
                                              ("1", (20.0, 8.0, 12.0))])
def test_repeat_callers_earn_the_credit(credit: str, expected: tuple[float, float, float]) -> None:
    r = PayoutRules(revenue=Decimal(20), base=Decimal(5), repeat=Repeat(86400, Decimal(credit)),
                    bonuses=(Bonus(Decimal(3), Condition("talk_seconds", 0)),))
    p = pay(r, call(), repeat=True)
    assert totals(p) == expected
    if credit != "1":
        line = p.items[-1]
        assert line["item"] == "repeat" and line["detail"] == f"repeat caller within 86400 s: credit {credit}"
        assert (line["revenue"], line["payout"]) == (expected[0] - 20, expected[1] - 8)
    assert totals(pay(r, call(), repeat=False)) == (20.0, 8.0, 12.0)  # outside the window: full price
    no_rule = PayoutRules(revenue=Decimal(20), base=Decimal(5))
    assert totals(pay(no_rule, call(), repeat=True)) == (20.0, 5.0, 15.0)


def test_repeat_credit_includes_the_sale_share_and_rounds_to_cents() -> None:
    r = PayoutRules(revenue=Decimal("10.05"), base=Decimal("5.05"), sale_share=Decimal("0.15"),
                    repeat=Repeat(3600, Decimal("0.5")))
    p = pay(r, call(sale_amount=33.33), repeat=True)
    # sale share 15% of 33.33 = 5.00 (4.9995 rounded); (5.05 + 5.00) * 0.5 = 5.025 -> 5.03; 10.05 * 0.5 -> 5.03
    assert [i["payout"] for i in p.items] == [0.0, 5.05, 5.0, -5.02]
    assert totals(p) == (5.03, 5.03, 0.0)


def test_a_winning_bid_is_the_revenue(tmp_path: Path) -> None:
    p = pay(rules(tmp_path), call(), bid=37.456)
    assert totals(p) == (37.46, 5.0, 32.46)
    assert next(i for i in p.items if i["item"] == "revenue")["detail"] == "the winning buyer's bid"
    assert totals(pay(rules(tmp_path), call(), bid=0.0)) == (0.0, 5.0, -5.0)


def test_record(tmp_path: Path) -> None:
    record = pay(rules(tmp_path), call()).record()
    assert (record["revenue"], record["payout"], record["margin"]) == (20.0, 5.0, 15.0)
    assert [i["item"] for i in record["payout_details"]["items"]] == ["qualify", "revenue", "base", *["bonus"] * 5,
                                                                      "sale_share"]
    json.dumps(record)


def test_without_qualify_every_call_that_is_not_spam_qualifies() -> None:
    r = PayoutRules(revenue=Decimal(2), base=Decimal(1))
    assert totals(pay(r, call(talk_seconds=None))) == (2.0, 1.0, 1.0)


@pytest.mark.parametrize("body, key, line", [
    ("  revenue: 20\n  surprise: 1\n", "payout.surprise", 4),
    ("  base: -5\n", "payout.base", 3),
    ("  revenue: ten\n", "payout.revenue", 3),
    ("  revenue: .inf\n", "payout.revenue", 3),
    ("  sale_share: 10\n", "payout.sale_share", 3),
    ("  repeat: {window: 0}\n", "payout.repeat.window", 3),
    ("  repeat: {credit: 1.5}\n", "payout.repeat.credit", 3),
    ("  repeat: {credits: 1}\n", "payout.repeat.credits", 3),
    ("  bonuses:\n    - {amount: -1, when: {converted: true}}\n", "payout.bonuses[0].amount", 4),
    ("  bonuses:\n    - {amount: 1}\n", "payout.bonuses[0].when", 4),
    ("  bonuses:\n    - amount: 1\n      when:\n        weekday: mon\n", "payout.bonuses[0].when.weekday", 6),
    ("  bonuses:\n    - {amount: 1, when: {}}\n", "payout.bonuses[0].when", 4),
    ("  bonuses:\n    - {amount: 1, when: {quality: great}}\n", "payout.bonuses[0].when.quality", 4),
    ("  bonuses:\n    - {amount: 1, when: {region: [Atlantis]}}\n", "payout.bonuses[0].when.region", 4),
    ("  bonuses:\n    - {amount: 1, when: {number_type: [cell]}}\n", "payout.bonuses[0].when.number_type", 4),
    ("  bonuses:\n    - {amount: 1, when: {talk_seconds: -1}}\n", "payout.bonuses[0].when.talk_seconds", 4),
    ("  bonuses:\n    - {amount: 1, when: {converted: yes please}}\n", "payout.bonuses[0].when.converted", 4),
    ("  bonuses:\n    - {amount: 1, when: {all: []}}\n", "payout.bonuses[0].when.all", 4),
    ("  bonuses:\n    - {amount: 1, when: {any: {region: [IL]}}}\n", "payout.bonuses[0].when.any", 4),
    ("  bonuses:\n    - amount: 1\n      when:\n        all:\n          - {region: [IL]}\n          - {colour: red}\n",
     "payout.bonuses[0].when.all[1].colour", 8),
    ("  qualify: {not: [talk_seconds: 5]}\n", "payout.qualify.not", 3),
    ("  qualify: {talk: 30}\n", "payout.qualify.talk", 3),
])
def test_bad_payout_config_names_file_line_and_key(tmp_path: Path, body: str, key: str, line: int) -> None:
    with pytest.raises(ConfigError) as info:
        read_payout(section(tmp_path, body))
    assert (info.value.key, info.value.line) == (key, line)
    assert info.value.file == str(tmp_path / "ringpool.yaml")


amounts = st.decimals(0, 1000, places=2)


@hsettings(max_examples=300, deadline=None)
@given(revenue=amounts, base=amounts, bonuses=st.lists(st.tuples(amounts, st.integers(0, 600)), max_size=4),
       share=st.decimals(0, 1, places=3), credit=st.decimals(0, 1, places=2), repeat=st.booleans(),
       bid=st.none() | st.floats(0, 1000, allow_nan=False), talk=st.none() | st.floats(0, 1000),
       sale=st.none() | st.floats(0, 100_000, allow_nan=False), spam=st.booleans(),
       qualify=st.none() | st.integers(0, 60))
def test_margin_is_revenue_less_payout_and_the_items_add_up(
        revenue: Decimal, base: Decimal, bonuses: list[tuple[Decimal, int]], share: Decimal, credit: Decimal,
        repeat: bool, bid: float | None, talk: float | None, sale: float | None, spam: bool,
        qualify: int | None) -> None:
    r = PayoutRules(revenue=revenue, base=base, sale_share=share, repeat=Repeat(60, credit),
                    qualify=Condition("talk_seconds", qualify) if qualify is not None else None,
                    bonuses=tuple(Bonus(a, Condition("talk_seconds", s)) for a, s in bonuses))
    p = pay(r, call(talk_seconds=talk, sale_amount=sale, spam=int(spam)), repeat=repeat, bid=bid)
    money = [Decimal(str(x)) for x in totals(p)]
    assert money[2] == money[0] - money[1]
    assert all(m == m.quantize(Decimal("0.01")) for m in money)
    assert sum(Decimal(str(i["revenue"])) for i in p.items) == money[0]
    assert sum(Decimal(str(i["payout"])) for i in p.items) == money[1]
    assert money[0] >= 0 and money[1] >= 0
