"""Number validity and suspicion rules for pre-answer screening (issue 5; seed 001, C5, C6 and C20).

Pure functions, no I/O: they run on every call before it is answered. Each one makes one linear pass over at
most ``MAX_INPUT`` characters (no regular expressions, no backtracking): well under a millisecond a call,
hostile input included.

A caller number is read as one of:

- NANP (country code 1): ``+1`` or ``011 1`` then the national number, ``1`` then 10 digits, or 10 bare digits.
  Anything given as country code 1 must have exactly 10 national digits.
- international (E.164, any other country code): ``+CC...`` or ``011 CC...`` (more than 10 digits in all), or
  bare digits that are neither 10 long nor start with 1. Only the generic checks apply: 7-15 digits, runs,
  sequences.
- neither: bare digits starting with 0 (a national trunk prefix, not a country code) and not 10 long.

Visual separators (space, ``-``, ``.``, ``(``, ``)``, ``/``) are ignored; SIP and tel URIs (``<sip:+1...@host>``)
are reduced to their user part. Anything else, including non-ASCII digits such as ``²``, is "malformed". A text
without any digit (``anonymous``) is not a number at all: ``number_findings`` returns nothing for it and
``signals.signaling_findings`` reports the withheld caller instead.

Bare 10-digit strings are taken as NANP. ``Signaling.caller_number`` has already lost its ``+``, so an
international number that is 10 digits long with its country code (``+49 30 1234567``) cannot be told apart
from a North American one there; pass the number with its ``+`` where you have it.

Weights are points toward spam on the 0-100 scale that ``score.py`` sums and caps at 100; a campaign's
``screening.weights`` can override any of them by factor name. Invalid structure is 40-50 (such a number
cannot be assigned to anyone, so it is made up or broken), suspicious patterns 15-30 (real but rare, and
favoured by spoofers), informational 5.

| factor | weight | when |
|---|---|---|
| number_malformed | 30 | characters other than digits and separators in the number |
| e164_too_long | 50 | more than 15 digits (E.164 maximum, country code included) |
| e164_too_short | 50 | an international number of fewer than 7 digits |
| number_no_country_code | 40 | starts with 0 and is not 10 digits: no country code begins with 0 |
| nanp_invalid_length | 50 | country code 1 but not 10 national digits |
| nanp_npa_invalid_first_digit | 50 | area code starts with 0 or 1 |
| nanp_n11_area_code | 50 | area code 211-911: N11 codes are service codes, never area codes |
| nanp_expansion_area_code | 45 | area code N9X (second digit 9): reserved for expanding the plan |
| nanp_reserved_area_code | 45 | area code 37X or 96X: reserved by the INC for unanticipated purposes |
| nanp_555_area_code | 45 | area code 555: not an area code in service |
| nanp_nxx_invalid_first_digit | 50 | exchange (NXX) starts with 0 or 1 |
| nanp_n11_exchange | 50 | exchange 211-911 (not checked under toll-free codes, which have their own rules) |
| nanp_fictional_555_01xx | 50 | NXX-line 555-0100 to 555-0199: reserved for fiction in every area code |
| nanp_special_exchange | 40 | exchange 950 (feature group B access), 958 or 959 (plant test): not subscriber lines |
| nanp_555_exchange | 15 | other 555 lines: 555-1212 is directory assistance; the rest are assignable but rarely used |
| nanp_premium_caller | 20 | area code 900: premium-rate numbers receive calls, they do not place them |
| nanp_toll_free_caller | 5 | toll-free (800 833 844 855 866 877 888): normal for a business, unusual for a person |
| all_zeros | 50 | the number after its country code is all zeros |
| all_same_digit | 40 | the number after its country code is one digit repeated |
| digit_run | 25 | 7 or more of one digit in a row (``212 777 7777``) |
| digit_sequence | 20 | the last 7 digits step up or down by 1, 2 or 3, mod 10 (``1234567``, ``9876543``, ``2468024``) |

Only one of all_zeros, all_same_digit and digit_run is reported for a number. Not covered here (they need
data, not rules): whether an area code or NPA-NXX is actually assigned (LERG or the NPA-NXX table), carrier,
line type, and the unassigned easily-recognisable codes other than 555 (222, 333, 400, ...).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    factor: str  # snake_case id, also the key for screening.weights overrides
    weight: int  # points toward spam, 0-100
    detail: str  # why, for the call record


WEIGHTS: dict[str, int] = {
    "number_malformed": 30,
    "e164_too_long": 50,
    "e164_too_short": 50,
    "number_no_country_code": 40,
    "nanp_invalid_length": 50,
    "nanp_npa_invalid_first_digit": 50,
    "nanp_n11_area_code": 50,
    "nanp_expansion_area_code": 45,
    "nanp_reserved_area_code": 45,
    "nanp_555_area_code": 45,
    "nanp_nxx_invalid_first_digit": 50,
    "nanp_n11_exchange": 50,
    "nanp_fictional_555_01xx": 50,
    "nanp_special_exchange": 40,
    "nanp_555_exchange": 15,
    "nanp_premium_caller": 20,
    "nanp_toll_free_caller": 5,
    "all_zeros": 50,
    "all_same_digit": 40,
    "digit_run": 25,
    "digit_sequence": 20,
}

# Findings that mean the number cannot be a real, assignable number (as opposed to suspicious patterns).
STRUCTURAL = frozenset({
    "number_malformed", "e164_too_long", "e164_too_short", "number_no_country_code", "nanp_invalid_length",
    "nanp_npa_invalid_first_digit", "nanp_n11_area_code", "nanp_expansion_area_code", "nanp_reserved_area_code",
    "nanp_555_area_code", "nanp_nxx_invalid_first_digit", "nanp_n11_exchange", "nanp_fictional_555_01xx",
    "nanp_special_exchange", "all_zeros",
})

TOLL_FREE = frozenset({"800", "833", "844", "855", "866", "877", "888"})
PREMIUM = frozenset({"900"})
SPECIAL_EXCHANGES = {"950": "feature group B carrier access", "958": "plant test", "959": "plant test"}
MAX_INPUT = 1024  # characters looked at; headers are cut to 512 before this
RUN = 7  # this many of one digit in a row is a run
SEQUENCE = 7  # the last this-many digits are checked for a sequence
SEQUENCE_STEPS = (1, 2, 3, -1, -2, -3)
SEPARATORS = frozenset(" -.()/\t")
DIGITS = frozenset("0123456789")


@dataclass(frozen=True)
class ParsedNumber:
    kind: str  # "nanp", "international" or "no_country_code"
    digits: str  # every digit, after an international prefix (+ or 011) was taken off
    national: str  # nanp: the digits after country code 1; otherwise the same as digits
    stray: str  # characters that are neither digits nor separators

    @property
    def canonical(self) -> str:
        """For comparing two forms of one number: country code included (``12125550147``, ``442079460958``)."""
        return "1" + self.national if self.kind == "nanp" else self.digits


def _find_outside_quotes(text: str, target: str, start: int = 0) -> int:
    if '"' not in text:
        return text.find(target, start)
    quoted = escaped = False
    for i in range(start, len(text)):
        ch = text[i]
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == target and not quoted:
            return i
    return -1


def header_values(text: str | None, limit: int = 8) -> list[str]:
    """The addresses in a header value: each ``<...>`` outside a quoted display name, else the whole text."""
    if not text:
        return []
    text = str(text)[:MAX_INPUT]
    found: list[str] = []
    at = 0
    while len(found) < limit:
        lt = _find_outside_quotes(text, "<", at)
        if lt == -1:
            break
        gt = text.find(">", lt + 1)
        found.append(text[lt + 1:gt if gt != -1 else len(text)])
        if gt == -1:
            break
        at = gt + 1
    return found or [text]


def number_text(value: str) -> str | None:
    """The number part of an address: the user part of a sip/sips URI, the number of a tel URI, or the text
    itself when it is not a URI. None for a URI without a user part (``sip:carrier.example``)."""
    text = value.strip()
    low = text[:5].lower()
    for scheme in ("sips:", "sip:", "tel:"):
        if low.startswith(scheme):
            rest = text[len(scheme):]
            if scheme != "tel:":
                at = rest.find("@")
                if at == -1:
                    return None
                rest = rest[:at]
            for stop in (";", "?"):
                cut = rest.find(stop)
                if cut != -1:
                    rest = rest[:cut]
            return rest.replace("%2B", "+").replace("%2b", "+")
    return text


def parse_number(value: str | None) -> ParsedNumber | None:
    """A caller number or a header address as a number; None if it holds no digit. Never raises."""
    if value is None:
        return None
    values = header_values(str(value), limit=1)
    text = number_text(values[0]) if values else None
    if text is None:
        return None
    text = text.strip()
    plus = text.startswith("+")
    if plus:
        text = text[1:]
    if text.isascii() and text.isdigit():
        d, stray_text = text, ""
    else:
        digits: list[str] = []
        stray: list[str] = []
        for ch in text:
            if ch in DIGITS:
                digits.append(ch)
            elif ch not in SEPARATORS:
                stray.append(ch)
        d, stray_text = "".join(digits), "".join(stray)
    if not d:
        return None
    if not plus and d.startswith("011") and len(d) > 10:  # ten bare digits are NANP, even 011-...
        d, plus = d[3:], True
    if plus:
        kind = "nanp" if d[0] == "1" else "no_country_code" if d[0] == "0" else "international"
    elif len(d) == 10 or d[0] == "1":
        kind = "nanp"
    else:
        kind = "no_country_code" if d[0] == "0" else "international"
    if kind == "nanp" and not (len(d) == 10 and not plus):
        national = d[1:]
    else:
        national = d
    return ParsedNumber(kind, d, national, stray_text)


def canonical_number(value: str | None) -> str | None:
    """Digits with the country code, for comparing numbers written differently; None without digits."""
    parsed = parse_number(value)
    return parsed.canonical if parsed else None


def _f(factor: str, detail: str) -> Finding:
    return Finding(factor, WEIGHTS[factor], detail)


def show(text: str, limit: int = 40) -> str:
    """A network value made safe for a detail string: printable, short."""
    clean = "".join(ch for ch in str(text) if ch.isprintable())
    return clean if len(clean) <= limit else clean[:limit] + "…"


def _nanp_rules(national: str) -> list[Finding]:
    """NPA and NXX rules for a 10-digit national number."""
    npa, nxx, line = national[:3], national[3:6], national[6:]
    shown = f"{npa}-{nxx}-{line}"
    found = []
    if npa[0] in "01":
        found.append(_f("nanp_npa_invalid_first_digit", f"area code {npa} of {shown} starts with {npa[0]}: "
                        "area codes start with 2-9"))
    elif npa[1:] == "11":
        found.append(_f("nanp_n11_area_code", f"area code {npa} of {shown} is an N11 service code, never an area code"))
    elif npa[1] == "9":
        found.append(_f("nanp_expansion_area_code", f"area code {npa} of {shown} has 9 as its second digit: "
                        "N9X codes are reserved for expanding the numbering plan"))
    elif npa[:2] in ("37", "96"):
        found.append(_f("nanp_reserved_area_code", f"area code {npa} of {shown} is in the reserved {npa[:2]}X block"))
    elif npa == "555":
        found.append(_f("nanp_555_area_code", f"area code 555 of {shown} is not an area code in service"))
    elif npa in TOLL_FREE:
        found.append(_f("nanp_toll_free_caller", f"{shown} is toll-free: normal for a business, unusual for a person"))
    elif npa in PREMIUM:
        found.append(_f("nanp_premium_caller", f"{shown} is a premium-rate 900 number, which receives calls "
                        "rather than placing them"))
    toll_free = npa in TOLL_FREE
    if nxx[0] in "01":
        found.append(_f("nanp_nxx_invalid_first_digit", f"exchange {nxx} of {shown} starts with {nxx[0]}: "
                        "exchanges start with 2-9"))
    elif nxx == "555" and line[:2] == "01":
        found.append(_f("nanp_fictional_555_01xx", f"{shown}: 555-0100 to 555-0199 are reserved for fiction"))
    elif nxx[1:] == "11" and not toll_free:
        found.append(_f("nanp_n11_exchange", f"exchange {nxx} of {shown} is an N11 service code, never an exchange"))
    elif nxx == "555" and not toll_free:
        what = "directory assistance" if line == "1212" else "rarely assigned to anyone"
        found.append(_f("nanp_555_exchange", f"{shown} is in the 555 exchange: {what}"))
    elif nxx in SPECIAL_EXCHANGES and not toll_free:
        found.append(_f("nanp_special_exchange", f"exchange {nxx} of {shown} is reserved for "
                        f"{SPECIAL_EXCHANGES[nxx]}, not subscriber lines"))
    return found


def longest_run(digits: str) -> tuple[int, str]:
    best, best_digit, length = 0, "", 0
    for i, ch in enumerate(digits):
        length = length + 1 if i and digits[i - 1] == ch else 1
        if length > best:
            best, best_digit = length, ch
    return best, best_digit


def sequence_step(digits: str) -> int | None:
    """The step (±1, ±2, ±3, mod 10) if ``digits`` is an arithmetic sequence of at least SEQUENCE digits."""
    if len(digits) < SEQUENCE:
        return None
    steps = {(int(b) - int(a)) % 10 for a, b in zip(digits, digits[1:])}
    if len(steps) != 1:
        return None
    step = steps.pop()
    step = step - 10 if step > 5 else step
    return step if step in SEQUENCE_STEPS else None


def _pattern_rules(parsed: ParsedNumber) -> list[Finding]:
    significant = parsed.national
    # the number after its country code: 1 to 3 digits for international numbers, whose length we do not know
    rests = [significant[k:] for k in (1, 2, 3)] if parsed.kind == "international" else [significant]
    uniform = next((rest for rest in rests if len(rest) >= RUN and len(set(rest)) == 1), None)
    found = []
    if uniform is not None and uniform[0] == "0":
        found.append(_f("all_zeros", f"{show(significant)} is all zeros after its country code"
                        if parsed.kind == "international" else f"{show(significant)} is all zeros"))
    elif uniform is not None:
        found.append(_f("all_same_digit", f"{show(significant)} is one digit repeated"))
    else:
        run, digit = longest_run(significant)
        if run >= RUN:
            found.append(_f("digit_run", f"{show(significant)} has {run} {digit}s in a row"))
    tail = significant[-SEQUENCE:]
    step = sequence_step(tail)
    if step is not None:
        way = "ascending" if step > 0 else "descending"
        found.append(_f("digit_sequence", f"the last {SEQUENCE} digits {tail} are an {way} sequence "
                        f"(step {abs(step)})"))
    return found


def number_findings(caller: str | None) -> list[Finding]:
    """Why a caller number is invalid or suspicious; empty for a plausible number or a text without digits."""
    parsed = parse_number(caller)
    if parsed is None:
        return []
    found = []
    if parsed.stray:
        found.append(_f("number_malformed", f"the number has characters other than digits: {show(parsed.stray, 20)!r}"))
    n = len(parsed.digits)
    if n > 15:
        found.append(_f("e164_too_long", f"{n} digits: numbers have at most 15 (E.164)"))
    elif parsed.kind == "no_country_code":
        found.append(_f("number_no_country_code", f"{show(parsed.digits)} starts with 0: no country code does, and "
                        "it is not a 10-digit North American number"))
    elif parsed.kind == "international":
        if n < 7:
            found.append(_f("e164_too_short", f"{n} digits: too short for an international number (7-15)"))
    elif len(parsed.national) != 10:
        found.append(_f("nanp_invalid_length", f"country code 1 with {len(parsed.national)} national digits "
                        "instead of 10"))
    else:
        found += _nanp_rules(parsed.national)
    return found + _pattern_rules(parsed)


def is_valid_nanp(number: str | None) -> bool:
    """A well-formed North American number (+1, 1 or 10 digits) whose area code and exchange can be assigned.
    Toll-free, premium and 555 numbers other than 555-01xx are valid; digit patterns do not make a number
    invalid. Says nothing about whether the number is actually in service."""
    parsed = parse_number(number)
    if parsed is None or parsed.kind != "nanp" or parsed.stray or len(parsed.national) != 10 or len(parsed.digits) > 15:
        return False
    return not any(f.factor in STRUCTURAL for f in _nanp_rules(parsed.national))


def is_valid_number(number: str | None) -> bool:
    """Any number, NANP or international, with no structural finding (see STRUCTURAL)."""
    if parse_number(number) is None:
        return False
    return not any(f.factor in STRUCTURAL for f in number_findings(number))
