"""Caller regions and number types from libphonenumber metadata, and region patterns for filters."""

from __future__ import annotations

import pytest

from dialplan.facts import Region
from dialplan.regions import NUMBER_TYPES, caller_region, matches_region, number_type, valid_region_pattern


def test_number_types_are_the_documented_set() -> None:
    assert NUMBER_TYPES == {
        "mobile", "fixed_line", "fixed_line_or_mobile", "toll_free", "premium_rate", "voip", "shared_cost",
        "personal_number", "pager", "uan", "voicemail", "unknown", "invalid", "anonymous"}


@pytest.mark.parametrize(("number", "expected"), [
    ("3125550123", Region("US", "IL", "312", "Chicago, IL")),  # 10 digits: NANP
    ("13125550123", Region("US", "IL", "312", "Chicago, IL")),  # 11 starting with 1: NANP
    ("+1 (312) 555-0123", Region("US", "IL", "312", "Chicago, IL")),
    ("2125550123", Region("US", "NY", "212", "New York, NY")),
    ("4163921000", Region("CA", "ON", "416", "Toronto, ON")),
    ("4165550123", Region("CA", "ON", "416", "Ontario")),  # the full name maps too
    ("9075550123", Region("US", "AK", "907", "Alaska")),
    ("2024561111", Region("US", "DC", "202", "Washington D.C.")),
    ("2065550123", Region("US", "WA", "206", "Washington State")),
    ("6045550123", Region("CA", "BC", "604", "British Columbia")),
    ("5145550123", Region("CA", "QC", "514", "Quebec")),
    ("7875550123", Region("US", "PR", "787", "Puerto Rico")),  # territory: filed under the US
    ("6714770000", Region("US", "GU", "671", "Guam")),
    ("9025550123", Region("CA", None, "902", "Nova Scotia/Prince Edward Island")),  # two provinces: neither
    ("8765550123", Region("JM", None, "876", "Jamaica")),  # NANP but not US/Canada: no state
    ("8002345678", Region("US", None, "800", None)),  # toll-free: nationwide, no state
    ("442079460000", Region("GB", None, None, "London")),
])
def test_caller_region(number: str, expected: Region) -> None:
    assert caller_region(number) == expected


@pytest.mark.parametrize("number", [None, "", "abc", "123", "1234567890", "19995550123", "80080012345",
                                    "999999999999999"])
def test_caller_region_unknown(number: str | None) -> None:
    # withheld, garbage, bad area code (123, 999), international non-geographic (+800), no such country
    assert caller_region(number) is None


@pytest.mark.parametrize(("number", "anonymous", "expected"), [
    ("3125550123", False, "fixed_line_or_mobile"),  # NANP: mobile vs landline needs a carrier lookup
    ("4163921000", False, "fixed_line_or_mobile"),
    ("8002345678", False, "toll_free"),
    ("9005550123", False, "premium_rate"),
    ("5005550123", False, "personal_number"),
    ("442079460000", False, "fixed_line"),
    ("447400123456", False, "mobile"),
    ("1234567890", False, "invalid"),
    ("garbage", False, "invalid"),
    ("", False, "invalid"),
    (None, False, "anonymous"),
    ("3125550123", True, "anonymous"),
])
def test_number_type(number: str | None, anonymous: bool, expected: str) -> None:
    assert number_type(number, anonymous) == expected
    assert expected in NUMBER_TYPES


@pytest.mark.parametrize("pattern", ["US", "CA", "IL", "ON", "PR", "DC", "us-il", "US-CA", "CA-ON", "US-PR",
                                     "312", "416", "GB", "MX"])
def test_valid_patterns(pattern: str) -> None:
    assert valid_region_pattern(pattern)


@pytest.mark.parametrize("pattern", ["", "USA", "XX", "US-ON", "CA-IL", "US-", "-IL", "US-XX", "911", "123",
                                     "031", "3125", "31", "Illinois", "GB-LND"])
def test_invalid_patterns(pattern: str) -> None:
    assert not valid_region_pattern(pattern)


CHICAGO = caller_region("3125550123")
TORONTO = caller_region("4163921000")
LONDON = caller_region("442079460000")
TOLL_FREE = caller_region("8002345678")
SAN_FRANCISCO = caller_region("4155550123")


@pytest.mark.parametrize(("region", "patterns", "expected"), [
    (CHICAGO, ["US"], True),
    (CHICAGO, ["CA"], False),
    (TORONTO, ["CA"], True),  # bare CA is Canada
    (SAN_FRANCISCO, ["CA"], False),  # ... not California
    (SAN_FRANCISCO, ["US-CA"], True),
    (CHICAGO, ["IL"], True),
    (CHICAGO, ["us-il"], True),
    (CHICAGO, ["US-IN", "IN"], False),
    (TORONTO, ["ON"], True),
    (TORONTO, ["CA-ON"], True),
    (TORONTO, ["US-ON"], False),  # invalid pattern: matches nothing
    (CHICAGO, ["312"], True),
    (CHICAGO, ["773"], False),
    (CHICAGO, ["NY", "212", "IL"], True),  # any of them
    (CHICAGO, [], False),
    (LONDON, ["GB"], True),
    (LONDON, ["US", "CA"], False),
    (TOLL_FREE, ["US"], True),
    (TOLL_FREE, ["800"], True),
    (TOLL_FREE, ["IL"], False),  # no state
    (caller_region("7875550123"), ["US"], True),
    (caller_region("7875550123"), ["PR"], True),
    (None, ["US"], False),
])
def test_matches_region(region: Region | None, patterns: list[str], expected: bool) -> None:
    assert matches_region(region, patterns) is expected


def test_lookups_are_cached() -> None:
    from dialplan.regions import _lookup

    caller_region("3125550199")
    before = _lookup.cache_info().hits
    caller_region("3125550199")
    number_type("13125550199")
    assert _lookup.cache_info().hits == before + 2
    assert _lookup.cache_info().maxsize is not None  # bounded
