"""dialplan.caller_id: the caller ID a destination sees (original, tracking, fixed, digit mask)."""

from __future__ import annotations

import pytest

from dialplan.caller_id import CallerIdMode, parse_caller_id, present_caller_id

TRACKING = "18005550100"


@pytest.mark.parametrize("value, mode", [
    ("original", CallerIdMode("original")),
    ("tracking", CallerIdMode("tracking")),
    ("+13125550000", CallerIdMode("fixed", "+13125550000")),
    ("+1 (312) 555-0000", CallerIdMode("fixed", "+13125550000")),
    (3125550000, CallerIdMode("fixed", "3125550000")),
    ("mask:212XXXXXXX", CallerIdMode("mask", "212XXXXXXX")),
    ("mask:212 xxx xxxx", CallerIdMode("mask", "212XXXXXXX")),
    ("mask:1212XXXXXXX", CallerIdMode("mask", "1212XXXXXXX")),
])
def test_parse(value: object, mode: CallerIdMode) -> None:
    assert parse_caller_id(value) == mode


@pytest.mark.parametrize("value, message", [
    ("mask:212XXXXX", "10 or 11"),  # 8 characters
    ("mask:12125XXXXXXX", "10 or 11"),  # 12
    ("mask:212YYYYYYY", "digits and X"),
    ("mask:2125550000", "without X"),
    ("caller", "expected original"),
    ("12", "phone number"),
    (True, "expected original"),
    (None, "expected original"),
    (["original"], "expected original"),
])
def test_parse_rejects(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_caller_id(value)


def test_original_and_withheld() -> None:
    assert present_caller_id(CallerIdMode("original"), caller="8056451234", tracking=TRACKING) == \
        ("8056451234", "original: the caller's number")
    number, why = present_caller_id(CallerIdMode("original"), caller=None, tracking=TRACKING)
    assert number is None and "withheld" in why


def test_tracking_and_fixed() -> None:
    assert present_caller_id(CallerIdMode("tracking"), caller="8056451234", tracking=TRACKING)[0] == TRACKING
    assert present_caller_id(CallerIdMode("tracking"), caller=None, tracking=TRACKING)[0] == TRACKING
    assert present_caller_id(CallerIdMode("fixed", "+12125555555"), caller="8056451234",
                             tracking=TRACKING)[0] == "+12125555555"


@pytest.mark.parametrize("mask, caller, shown", [
    ("212XXXXXXX", "8056451234", "2126451234"),  # the seed's example
    ("212XXXXXXX", "18056451234", "2126451234"),  # end-aligned: the country code is not part of it
    ("1212XXXXXXX", "8056451234", "12126451234"),
    ("1212XXXXXXX", "18056451234", "12126451234"),
    ("XXXXXXX000", "8056451234", "8056451000"),  # Xs at the front keep the front
    ("X212XXXXXXX", "18056451234", "12126451234"),  # an X in the 11th place needs 11 digits
    ("212XXXXXXX", "+1 805 645 1234", "2126451234"),
    ("212555XXXX", "1234", "2125551234"),  # a short number fills the Xs it reaches
])
def test_mask(mask: str, caller: str, shown: str) -> None:
    number, why = present_caller_id(CallerIdMode("mask", mask), caller=caller, tracking=TRACKING)
    assert (number, why) == (shown, f"mask {mask}")


def test_mask_withheld_presents_tracking_and_says_so() -> None:
    number, why = present_caller_id(CallerIdMode("mask", "212XXXXXXX"), caller=None, tracking=TRACKING)
    assert number == TRACKING
    assert "withheld" in why and "tracking" in why


@pytest.mark.parametrize("mask, caller", [
    ("212XXXXXXX", "12345"),  # 7 Xs, 5 digits
    ("X212XXXXXXX", "8056451234"),  # 11th place X, 10 digits
    ("212XXXXXXX", ""),
])
def test_mask_too_short_presents_tracking(mask: str, caller: str) -> None:
    number, why = present_caller_id(CallerIdMode("mask", mask), caller=caller, tracking=TRACKING)
    assert number == TRACKING
    assert "too short" in why
