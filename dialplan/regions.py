"""Where a caller's number is from and what kind of number it is, from the number alone (libphonenumber's
metadata; no carrier lookup, so nothing here costs a network round trip on the call path).

Numbers come as Ringpool stores them: digits, no ``+``. Ten digits, or eleven starting with 1, are North
American (NANP, +1); anything else is tried as international E.164 digits.

Two things the number cannot say, so nothing here pretends to:

* Mobile versus landline in North America. NANP numbers are not allocated by type, so libphonenumber calls
  every ordinary US/Canadian number ``fixed_line_or_mobile``; telling them apart needs a carrier (LRN/CNAM)
  lookup. ``mobile`` and ``fixed_line`` only appear for countries that allocate by type (e.g. the UK).
* Where a North American caller is today. The state or province is that of the area code, which is where the
  number was issued; a ported or mobile number may be far from it.

Region patterns (routing filters, campaign geography):

* ``"US"``, ``"CA"``: a country. A bare ``"CA"`` is the country Canada, never California (write ``"US-CA"``).
* ``"IL"``, ``"ON"``: a US state (the 50, DC and the territories PR, GU, VI, AS, MP) or a Canadian province
  or territory. Other two-letter ISO country codes (``"GB"``, ``"MX"``) are countries too, except those
  that are also a state code: ``"DE"`` is Delaware, ``"IN"`` Indiana; those countries cannot be named bare.
* ``"US-IL"``, ``"CA-ON"``: a state of that country, unambiguous.
* ``"312"``: a NANP area code.

US territories report country ``"US"`` with the territory as the state (libphonenumber's own region code would
be ``"PR"``, ``"GU"``...): they dial as domestic US numbers, so a ``"US"`` filter includes them and
``"US-PR"`` picks one out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType, geocoder

from dialplan.facts import Region

NUMBER_TYPES: frozenset[str] = frozenset({
    "mobile", "fixed_line", "fixed_line_or_mobile", "toll_free", "premium_rate", "voip", "shared_cost",
    "personal_number", "pager", "uan", "voicemail", "unknown", "invalid", "anonymous",
})

_TYPE_NAMES: dict[int, str] = {
    PhoneNumberType.FIXED_LINE: "fixed_line",
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
    PhoneNumberType.UNKNOWN: "unknown",
}

US_STATES: dict[str, str] = {
    "Alabama": "AL", "Alaska": "AK", "Arizona": "AZ", "Arkansas": "AR", "California": "CA", "Colorado": "CO",
    "Connecticut": "CT", "Delaware": "DE", "Florida": "FL", "Georgia": "GA", "Hawaii": "HI", "Idaho": "ID",
    "Illinois": "IL", "Indiana": "IN", "Iowa": "IA", "Kansas": "KS", "Kentucky": "KY", "Louisiana": "LA",
    "Maine": "ME", "Maryland": "MD", "Massachusetts": "MA", "Michigan": "MI", "Minnesota": "MN",
    "Mississippi": "MS", "Missouri": "MO", "Montana": "MT", "Nebraska": "NE", "Nevada": "NV",
    "New Hampshire": "NH", "New Jersey": "NJ", "New Mexico": "NM", "New York": "NY", "North Carolina": "NC",
    "North Dakota": "ND", "Ohio": "OH", "Oklahoma": "OK", "Oregon": "OR", "Pennsylvania": "PA",
    "Rhode Island": "RI", "South Carolina": "SC", "South Dakota": "SD", "Tennessee": "TN", "Texas": "TX",
    "Utah": "UT", "Vermont": "VT", "Virginia": "VA", "Washington": "WA", "West Virginia": "WV",
    "Wisconsin": "WI", "Wyoming": "WY", "Washington State": "WA",
    "District of Columbia": "DC", "Washington D.C.": "DC", "Washington DC": "DC", "Washington, D.C.": "DC",
    "Puerto Rico": "PR", "Guam": "GU", "U.S. Virgin Islands": "VI", "US Virgin Islands": "VI",
    "United States Virgin Islands": "VI", "American Samoa": "AS", "Northern Mariana Islands": "MP",
}

CA_PROVINCES: dict[str, str] = {
    "Alberta": "AB", "British Columbia": "BC", "British Colombia": "BC",  # sic, in libphonenumber
    "Manitoba": "MB", "New Brunswick": "NB",
    "Newfoundland and Labrador": "NL", "Newfoundland": "NL", "Nova Scotia": "NS", "Northwest Territories": "NT",
    "Nunavut": "NU", "Ontario": "ON", "Prince Edward Island": "PE", "Quebec": "QC", "Québec": "QC",
    "Saskatchewan": "SK", "Yukon": "YT",
}

_STATE_CODES: dict[str, frozenset[str]] = {
    "US": frozenset(US_STATES.values()),
    "CA": frozenset(CA_PROVINCES.values()),
}
# NANP territories libphonenumber gives their own region code; Ringpool files them under the US.
_US_TERRITORIES = frozenset({"PR", "GU", "VI", "AS", "MP"})
_AREA_CODE = re.compile(r"^[2-9][0-9]{2}$")


def _nanp_state(country: str, description: str) -> str | None:
    """The state/province code in a geocoder description: ``"Chicago, IL"``, ``"Illinois"``, ``"Ontario"``.
    A description naming several (``"Nova Scotia/Prince Edward Island"``) names none."""
    codes = _STATE_CODES[country]
    names = US_STATES if country == "US" else CA_PROVINCES
    if description in names:
        return names[description]
    _, sep, tail = description.rpartition(", ")
    if sep and tail in codes:
        return tail
    return None


def _e164_digits(number: str | None) -> str | None:
    """Digits with the country code, or None when there are none."""
    if number is None:
        return None
    digits = "".join(ch for ch in number if ch.isdigit())
    if not digits:
        return None
    if len(digits) == 10:
        return "1" + digits
    return digits


@lru_cache(maxsize=8192)
def _lookup(digits: str) -> tuple[Region | None, str]:
    """Region and type of one number; cached because every call asks and the answers never change."""
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None, "invalid"
    valid = phonenumbers.is_valid_number(parsed)
    kind = _TYPE_NAMES.get(phonenumbers.number_type(parsed), "unknown") if valid else "invalid"
    country = phonenumbers.region_code_for_number(parsed)
    if not valid or not country or country == "001":  # "001": non-geographic (+800, +882...)
        return None, kind
    description = geocoder.description_for_number(parsed, "en") or None
    if parsed.country_code != 1:
        return Region(country=country, description=description), kind
    national = phonenumbers.national_significant_number(parsed)
    area_code = national[:3]
    state: str | None = None
    if country in _US_TERRITORIES:
        country, state = "US", country
    elif country in _STATE_CODES and kind not in ("toll_free", "premium_rate", "personal_number", "uan", "voip"):
        # Non-geographic NANP codes (8xx, 900, 500, 700...) are nationwide: no state.
        state = _nanp_state(country, description) if description else None
    return Region(country=country, state=state, area_code=area_code, description=description), kind


def caller_region(number: str | None) -> Region | None:
    """Where the number is from; None when withheld, malformed, not a valid number, or not in any country
    (international non-geographic numbers). NANP numbers carry the area code and, for geographic US/Canadian
    area codes, the state or province of that code."""
    digits = _e164_digits(number)
    return _lookup(digits)[0] if digits else None


def number_type(number: str | None, anonymous: bool = False) -> str:
    """One of NUMBER_TYPES. A withheld number (None or ``anonymous``) is ``"anonymous"``; a number
    libphonenumber does not accept is ``"invalid"``. Ordinary US/Canadian numbers are
    ``"fixed_line_or_mobile"``: see the module docstring."""
    if anonymous or number is None:
        return "anonymous"
    digits = _e164_digits(number)
    return _lookup(digits)[1] if digits else "invalid"


def _parse_pattern(pattern: str) -> tuple[str, str] | None:
    """``(kind, value)``: ``("country", "CA")``, ``("state", "US-IL")``, ``("area", "312")``; None if invalid."""
    if not isinstance(pattern, str):
        return None
    p = pattern.strip().upper()
    if _AREA_CODE.match(p):
        return None if p[1:] == "11" else ("area", p)  # N11 (211, 911...) are service codes, not areas
    country, sep, state = p.partition("-")
    if sep:
        return ("state", p) if state in _STATE_CODES.get(country, ()) else None
    if len(p) != 2:
        return None
    if p in ("US", "CA"):
        return "country", p
    for country, codes in _STATE_CODES.items():
        if p in codes:
            return "state", f"{country}-{p}"
    if p in phonenumbers.SUPPORTED_REGIONS:
        return "country", p
    return None


def valid_region_pattern(pattern: str) -> bool:
    """Whether ``pattern`` is one matches_region understands (for config validation at load time)."""
    return _parse_pattern(pattern) is not None


def matches_region(region: Region | None, patterns: Iterable[str]) -> bool:
    """Whether the region matches any of the patterns. No region (withheld, invalid) matches nothing, and
    neither do no patterns: the caller decides whether an empty filter means "everyone". Invalid patterns
    match nothing rather than fail a live call; validate them with valid_region_pattern when loading."""
    if region is None:
        return False
    for pattern in patterns:
        parsed = _parse_pattern(pattern)
        if parsed is None:
            continue
        kind, value = parsed
        if kind == "country" and region.country == value:
            return True
        if kind == "state" and region.state is not None and f"{region.country}-{region.state}" == value:
            return True
        if kind == "area" and region.area_code == value:
            return True
    return False
