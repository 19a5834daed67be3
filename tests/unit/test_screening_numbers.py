"""ari_app.screening.numbers and ari_app.screening.signals: number validity, digit patterns and signaling rules.

Test numbers: 202-418-1440 (the FCC's published number) and 888-225-5322 (FCC toll-free) stand for real, valid
numbers; 555-01xx only where a fictional number is the point; +44 20 7946 0xxx is the UK's drama range.
"""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ari_app.screening import numbers, signals
from ari_app.screening.numbers import (STRUCTURAL, WEIGHTS, Finding, canonical_number, is_valid_nanp,
                                       is_valid_number, number_findings, parse_number)
from ari_app.screening.signals import signaling_findings
from dialplan.signaling import Signaling, signaling_from_channel

VALID = "2024181440"


def factors(findings: list[Finding]) -> set[str]:
    return {f.factor for f in findings}


# --- number_findings: one row per rule -----------------------------------------------------------------------

NUMBER_CASES = [
    # plausible numbers in every accepted form: nothing to say
    ("+1 202 418 1440", set()),
    ("2024181440", set()),
    ("12024181440", set()),
    ("1 (202) 418-1440", set()),
    ("202.418.1440", set()),
    ("011 1 202 418 1440", set()),
    ("<sip:+12024181440@carrier.example;user=phone>", set()),
    ('"FCC" <tel:+1-202-418-1440;cic=1234>', set()),
    ("+44 20 7946 0958", set()),  # international: generic checks only
    ("442079460958", set()),  # the same without its + (as Signaling keeps it)
    ("011 44 20 7946 0958", set()),
    ("+852 2123 4568", set()),
    # no digits: not a number (signals.py reports the withheld caller)
    ("anonymous", set()),
    ("", set()),
    (None, set()),
    ("<sip:carrier.example>", set()),
    # structure
    ("2024181440x", {"number_malformed"}),
    ("202-418-144O", {"number_malformed"}),  # letter O for zero: 9 digits left, taken as international
    ("202418144²0", {"number_malformed"}),  # non-ASCII digit: not a digit here
    ("+1202418144012345", {"e164_too_long"}),
    ("4420794609581234", {"e164_too_long"}),
    ("+44 2079", {"e164_too_short"}),
    ("+0 202 418 1440", {"number_no_country_code"}),
    ("02079460958", {"number_no_country_code"}),
    ("+1 202 418 144", {"nanp_invalid_length"}),
    ("1202418144", {"nanp_npa_invalid_first_digit"}),  # 10 bare digits are NANP: area code 120
    ("12024181", {"nanp_invalid_length"}),
    ("+1", {"nanp_invalid_length"}),
    # area codes
    ("0024181440", {"nanp_npa_invalid_first_digit"}),
    ("1024181440", {"nanp_npa_invalid_first_digit"}),
    ("+1 411 418 1440", {"nanp_n11_area_code"}),
    ("9114181440", {"nanp_n11_area_code"}),
    ("2114181440", {"nanp_n11_area_code"}),
    ("2914181440", {"nanp_expansion_area_code"}),
    ("9994181440", {"nanp_expansion_area_code"}),
    ("3734181440", {"nanp_reserved_area_code"}),
    ("9604181440", {"nanp_reserved_area_code"}),
    ("5554181440", {"nanp_555_area_code"}),
    ("+15557770101", {"nanp_555_area_code"}),
    ("8004181440", {"nanp_toll_free_caller"}),
    ("+1 888 225 5322", {"nanp_toll_free_caller"}),
    ("8334181440", {"nanp_toll_free_caller"}),
    ("9004181440", {"nanp_premium_caller"}),
    # exchanges
    ("2020181440", {"nanp_nxx_invalid_first_digit"}),
    ("2021181440", {"nanp_nxx_invalid_first_digit"}),
    ("2024111440", {"nanp_n11_exchange"}),
    ("2029111440", {"nanp_n11_exchange"}),
    ("8004111440", {"nanp_toll_free_caller"}),  # toll-free codes have their own exchange rules
    ("2025550100", {"nanp_fictional_555_01xx"}),
    ("+1 212 555 0147", {"nanp_fictional_555_01xx"}),
    ("2125550199", {"nanp_fictional_555_01xx"}),
    ("8005550123", {"nanp_toll_free_caller", "nanp_fictional_555_01xx"}),
    ("2125550200", {"nanp_555_exchange"}),
    ("2125551212", {"nanp_555_exchange"}),
    ("8005551212", {"nanp_toll_free_caller"}),
    ("2129501440", {"nanp_special_exchange"}),
    ("2129581440", {"nanp_special_exchange"}),
    ("2129591440", {"nanp_special_exchange"}),
    ("2129571440", set()),
    # patterns
    ("0000000000", {"nanp_npa_invalid_first_digit", "nanp_nxx_invalid_first_digit", "all_zeros"}),
    ("+44 000 000 0000", {"all_zeros"}),
    ("2222222222", {"all_same_digit"}),
    ("+44 4444 444444", {"all_same_digit"}),
    ("2127777777", {"digit_run"}),
    ("2022222221", {"digit_run"}),  # the run crosses the exchange
    ("2124444444", {"digit_run"}),
    ("2124444449", set()),  # six in a row is a plain number
    ("+44 20 7777 7777", {"digit_run"}),
    ("2123456789", {"digit_sequence"}),
    ("2125678901", {"digit_sequence"}),  # wraps 9 -> 0
    ("2129876543", {"digit_sequence"}),
    ("2122468024", {"digit_sequence"}),  # step 2
    ("2123692581", {"digit_sequence"}),  # step 3
    ("2127531975", {"digit_sequence"}),  # step -2
    ("+44 20 3456 7890", {"digit_sequence"}),
    ("2122345679", set()),
    ("1234567890", {"nanp_npa_invalid_first_digit", "digit_sequence"}),
]


@pytest.mark.parametrize(("caller", "expected"), NUMBER_CASES)
def test_number_rules(caller: str | None, expected: set[str]) -> None:
    found = number_findings(caller)
    assert factors(found) == expected, [f.detail for f in found]
    for finding in found:
        assert finding.weight == WEIGHTS[finding.factor]
        assert finding.detail and "\n" not in finding.detail


def test_every_number_rule_has_a_case() -> None:
    covered = set().union(*(expected for _, expected in NUMBER_CASES))
    assert covered == set(WEIGHTS)


def test_details_say_why() -> None:
    [finding] = number_findings("+1 212 555 0147")
    assert finding == Finding("nanp_fictional_555_01xx", 50,
                              "212-555-0147: 555-0100 to 555-0199 are reserved for fiction")
    [finding] = number_findings("9114181440")
    assert "911" in finding.detail and "N11" in finding.detail
    [finding] = number_findings("2125551212")
    assert "directory assistance" in finding.detail
    [finding] = number_findings("2129876543")
    assert "9876543" in finding.detail and "descending" in finding.detail
    [finding] = number_findings("2127777777")
    assert "7 7s in a row" in finding.detail


def test_hostile_detail_is_short_and_printable() -> None:
    found = number_findings("2024181440" + "\x1b[31m" + "x" * 500)
    assert factors(found) == {"number_malformed"}
    assert len(found[0].detail) < 120 and found[0].detail.isprintable()


@pytest.mark.parametrize(("number", "valid"), [
    ("+1 202 418 1440", True), ("2024181440", True), ("12024181440", True), ("8882255322", True),
    ("9004181440", True), ("2125551212", True), ("2127777777", True),  # patterns do not make it invalid
    ("2125550147", False), ("5554181440", False), ("9114181440", False), ("2024111440", False),
    ("2914181440", False), ("3704181440", False), ("2020181440", False), ("2129581440", False),
    ("202418144", False), ("+442079460958", False), ("2024181440x", False), ("anonymous", False), (None, False),
])
def test_is_valid_nanp(number: str | None, valid: bool) -> None:
    assert is_valid_nanp(number) is valid


def test_is_valid_number_covers_international() -> None:
    assert is_valid_number("+44 20 7946 0958") and is_valid_number("2024181440")
    assert not is_valid_number("+44 2079") and not is_valid_number("02079460958") and not is_valid_number("x")


def test_parse_and_canonical() -> None:
    assert canonical_number("+1 (202) 418-1440") == canonical_number("2024181440") == "12024181440"
    assert canonical_number("<sip:+442079460958@x>") == canonical_number("011442079460958") == "442079460958"
    assert canonical_number("anonymous") is None
    parsed = parse_number('"Sales, <East>" <sip:+12024181440;npdi;rn=+12025550000@carrier.example>')
    assert parsed is not None and parsed.national == VALID and not parsed.stray


# --- the weight tables ------------------------------------------------------------------------------------------

def _table(doc: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^\| ([a-z0-9_]+) \| (\d+) \|", doc, re.M)}


@pytest.mark.parametrize("module", [numbers, signals], ids=["numbers", "signals"])
def test_docstring_table_is_the_weights(module) -> None:
    assert _table(module.__doc__) == module.WEIGHTS


def test_weights_bounded_and_named() -> None:
    assert not set(numbers.WEIGHTS) & set(signals.WEIGHTS)
    for factor, weight in {**numbers.WEIGHTS, **signals.WEIGHTS}.items():
        assert re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", factor)
        assert 0 <= weight <= 100
    assert STRUCTURAL <= set(WEIGHTS)
    # invalid structure weighs more than a suspicious pattern, which weighs more than toll-free
    assert min(WEIGHTS[f] for f in STRUCTURAL - {"number_malformed"}) >= 40
    assert max(WEIGHTS[f] for f in ("digit_run", "digit_sequence", "nanp_555_exchange", "nanp_premium_caller")) <= 30
    assert WEIGHTS["nanp_toll_free_caller"] <= 10


# --- properties ---------------------------------------------------------------------------------------------------

def _run(digits: str) -> bool:
    return re.search(r"(\d)\1{6}", digits) is not None


def _sequence(digits: str) -> bool:
    tail = digits[-7:]
    steps = {(int(b) - int(a)) % 10 for a, b in zip(tail, tail[1:])}
    return len(steps) == 1 and steps.pop() in (1, 2, 3, 7, 8, 9)


GEOGRAPHIC_NPA = st.from_regex(r"[2-9][0-8][0-9]", fullmatch=True).filter(
    lambda npa: npa[1:] != "11" and npa[:2] not in ("37", "96") and npa != "555"
    and npa not in numbers.TOLL_FREE | numbers.PREMIUM)
PLAIN_NXX = st.from_regex(r"[2-9][0-9][0-9]", fullmatch=True).filter(
    lambda nxx: nxx[1:] != "11" and nxx != "555" and nxx not in numbers.SPECIAL_EXCHANGES)
LINE = st.from_regex(r"[0-9]{4}", fullmatch=True)
FORMAT = st.sampled_from(["{}{}{}", "+1{}{}{}", "1{}{}{}", "+1 ({}) {}-{}", "{}.{}.{}", "<sip:+1{}{}{}@c.example>",
                          "011 1 {} {} {}"])


@given(GEOGRAPHIC_NPA, PLAIN_NXX, LINE, FORMAT)
def test_valid_nanp_numbers_have_no_finding(npa: str, nxx: str, line: str, form: str) -> None:
    national = npa + nxx + line
    found = factors(number_findings(form.format(npa, nxx, line)))
    assert not found & STRUCTURAL
    assert is_valid_nanp(form.format(npa, nxx, line))
    run = "all_same_digit" if len(set(national)) == 1 else "digit_run"
    expected = ({run} if _run(national) else set()) | ({"digit_sequence"} if _sequence(national) else set())
    assert found == expected


@given(st.from_regex(r"[0-9]{2}", fullmatch=True), PLAIN_NXX, LINE,
       st.sampled_from(["toll", "premium", "555"]))
def test_special_area_codes_are_valid_but_noted(rest: str, nxx: str, line: str, kind: str) -> None:
    npa = {"toll": "8" + rest[0] * 2 if rest[0] in "034567" else "888", "premium": "900", "555": "555"}[kind]
    found = factors(number_findings(npa + nxx + line))
    if kind == "555":
        assert "nanp_555_area_code" in found and not is_valid_nanp(npa + nxx + line)
    else:
        assert found & {"nanp_toll_free_caller", "nanp_premium_caller"} and is_valid_nanp(npa + nxx + line)


@given(st.from_regex(r"[01][0-9]{2}", fullmatch=True), PLAIN_NXX, LINE)
def test_area_code_starting_0_or_1_is_always_invalid(npa: str, nxx: str, line: str) -> None:
    assert "nanp_npa_invalid_first_digit" in factors(number_findings(npa + nxx + line))
    assert not is_valid_nanp(npa + nxx + line)


@given(GEOGRAPHIC_NPA, st.sampled_from("0123456789"))
def test_seven_of_one_digit_is_a_run(npa: str, digit: str) -> None:
    found = factors(number_findings(npa + digit * 7))
    assert found & {"digit_run", "all_same_digit", "all_zeros"}


@given(GEOGRAPHIC_NPA, st.sampled_from("0123456789"), st.sampled_from([1, 2, 3, -1, -2, -3]))
def test_stepped_subscriber_is_a_sequence(npa: str, start: str, step: int) -> None:
    subscriber = "".join(str((int(start) + i * step) % 10) for i in range(7))
    assert "digit_sequence" in factors(number_findings(npa + subscriber))


@given(st.from_regex(r"[2-9][0-9]{6,13}", fullmatch=True))
def test_international_numbers_get_generic_checks_only(digits: str) -> None:
    found = factors(number_findings("+" + digits))
    assert found <= {"digit_run", "all_same_digit", "all_zeros", "digit_sequence"}


@given(st.one_of(st.none(), st.text(max_size=300), st.from_regex(r"\+?[0-9 ()<>@:;.\"-]{0,40}", fullmatch=True)))
@settings(max_examples=500)
def test_never_raises_on_any_text(text: str | None) -> None:
    found = number_findings(text)
    assert len({f.factor for f in found}) == len(found)
    for finding in found:
        assert WEIGHTS[finding.factor] == finding.weight and 0 <= finding.weight <= 100
        assert finding.detail.isprintable()
    is_valid_nanp(text)
    is_valid_number(text)


OPTIONAL_TEXT = st.one_of(st.none(), st.text(max_size=200))


@given(OPTIONAL_TEXT, OPTIONAL_TEXT, st.text(max_size=40), OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT, OPTIONAL_TEXT)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_signaling_findings_never_raise(caller, name, dialed, pai, privacy, diversion, charge) -> None:
    s = Signaling("id", None, caller, name, dialed, None, pai, privacy, diversion, charge)
    found = signaling_findings(s)
    assert len({f.factor for f in found}) == len(found)
    for finding in found:
        assert signals.WEIGHTS[finding.factor] == finding.weight and finding.detail.isprintable()


def test_signaling_findings_tolerate_odd_objects() -> None:
    assert factors(signaling_findings(object())) == {"caller_number_missing", "pai_absent"}

    class Odd:
        caller_number = 2024181440  # not a string
        caller_name = b"bytes"
        p_asserted_identity = ["<sip:+12024181440@x>"]

    assert "pai_mismatch" not in factors(signaling_findings(Odd()))


# --- speed: these run on every call before it is answered ----------------------------------------------------------

HOSTILE = ["<" * 100_000, '"' * 100_000, '"<' * 50_000, "sip:" * 25_000, "9" * 1_000_000, "\\\"" * 50_000,
           "+" + "1 " * 200_000, "sip:" + "@" * 100_000, ";reason=" * 20_000, "\x00" * 100_000]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_input_is_cheap(text: str) -> None:
    s = Signaling("id", None, text, text, text[:64], None, text, text, text, text)
    start = time.perf_counter()
    number_findings(text)
    signaling_findings(s)
    assert time.perf_counter() - start < 0.05  # bounded by MAX_INPUT, no backtracking


def test_typical_calls_take_microseconds() -> None:
    calls = [
        Signaling("a", None, "12024181440", "FCC", "18882255322", "carrier", "<sip:+12024181440@carrier.example>",
                  None, None, "<sip:+12024181440@carrier.example>"),
        Signaling("b", None, "anonymous", None, "18882255322", "carrier", None, "id", None, None),
        Signaling("c", None, "15557770101", "SPAM RISK", "15557770102", "carrier",
                  '"Test" <sip:+19115550000@carrier.example;user=phone>', "none",
                  "<sip:+12024181440@x>;reason=no-answer", "<sip:15550008888@carrier.example>"),
    ]
    rounds = 3000
    start = time.perf_counter()
    for _ in range(rounds):
        for s in calls:
            number_findings(s.caller_number)
            signaling_findings(s)
    per_call = (time.perf_counter() - start) / (rounds * len(calls))
    assert per_call < 0.002, f"{per_call * 1e6:.0f} µs per call"


# --- signaling_findings: one row per rule ---------------------------------------------------------------------------

def sig(**changes) -> Signaling:
    base = dict(channel_id="c1", channel_name="PJSIP/trunk-1", caller_number="12024181440", caller_name="FCC",
                dialed_number="18882255322", trunk="carrier", p_asserted_identity="<sip:+12024181440@carrier.example>",
                privacy=None, diversion=None, p_charge_info=None)
    base.update(changes)
    return Signaling(**base)


SIGNALING_CASES = [
    ("clean", {}, set()),
    ("privacy none", {"privacy": "none"}, set()),
    ("no caller", {"caller_number": None}, {"caller_number_missing"}),
    ("no caller, privacy id", {"caller_number": None, "privacy": "id", "caller_name": None}, {"caller_withheld"}),
    ("anonymous", {"caller_number": "anonymous", "caller_name": "Anonymous"}, {"caller_withheld"}),
    ("restricted", {"caller_number": "Restricted", "caller_name": None}, {"caller_withheld"}),
    ("privacy id with number", {"privacy": "id"}, {"caller_withheld"}),
    ("privacy user;id", {"privacy": "user; id"}, {"caller_withheld"}),
    ("privacy header", {"privacy": "header"}, {"caller_withheld"}),
    ("privacy critical only", {"privacy": "critical"}, set()),
    ("unavailable", {"caller_number": "unavailable"}, {"caller_unavailable"}),
    ("out of area", {"caller_number": "OUT OF AREA"}, {"caller_unavailable"}),
    ("not numeric", {"caller_number": "asterisk"}, {"caller_number_not_numeric"}),
    ("pai absent", {"p_asserted_identity": None}, {"pai_absent"}),
    ("pai mismatch", {"p_asserted_identity": "<sip:+13122354000@carrier.example>"}, {"pai_mismatch"}),
    ("pai other form", {"p_asserted_identity": '"FCC" <tel:+1-202-418-1440>'}, set()),
    ("pai national form", {"p_asserted_identity": "<sip:2024181440@carrier.example;user=phone>"}, set()),
    ("pai second value", {"p_asserted_identity": "<sip:+13122354000@c.example>, <tel:+12024181440>"}, set()),
    ("pai international", {"caller_number": "442079460958", "p_asserted_identity": "<tel:+44-20-7946-0958>"}, set()),
    ("pai invalid", {"p_asserted_identity": "<sip:+19115550000@carrier.example>"},
     {"pai_number_invalid", "pai_mismatch"}),
    ("pai invalid = caller", {"caller_number": "15557770101", "p_asserted_identity": "<sip:+15557770101@c.example>"},
     set()),  # number_findings already judges the caller number
    ("pai anonymous uri", {"caller_number": "anonymous", "caller_name": None,
                           "p_asserted_identity": "<sip:anonymous@anonymous.invalid>"}, {"caller_withheld"}),
    ("withheld with pai", {"caller_number": "anonymous", "privacy": "id", "caller_name": None}, {"caller_withheld"}),
    ("own number", {"dialed_number": "12024181440"}, {"caller_is_called_number"}),
    ("neighbour", {"dialed_number": "12024189999"}, {"caller_shares_called_prefix"}),
    ("name missing", {"caller_name": None}, {"caller_name_missing"}),
    ("name placeholder", {"caller_name": "UNKNOWN CALLER"}, {"caller_name_unknown"}),
    ("name is number", {"caller_name": "202-418-1440"}, {"caller_name_is_number"}),
    ("name single letter", {"caller_name": "P"}, {"caller_name_single_letter"}),
    ("name spam label", {"caller_name": "SCAM LIKELY"}, {"caller_name_spam_label"}),
    ("name spam?", {"caller_name": "SPAM?"}, {"caller_name_spam_label"}),
    ("name containing scam", {"caller_name": "ESCAMILLA MARIA"}, set()),
    ("name all caps", {"caller_name": "WIRELESS CALLER"}, set()),
    ("name initial and surname", {"caller_name": "J SMITH"}, set()),
    ("charge valid", {"p_charge_info": "<sip:+13122354000@carrier.example;npi=ISDN;noa=3>"}, set()),
    ("charge unparseable", {"p_charge_info": "<sip:carrier.example>"}, {"charge_info_unparseable"}),
    ("charge invalid", {"p_charge_info": "<sip:15550008888@carrier.example>"}, {"charge_number_invalid"}),
    ("forwarded", {"diversion": "<sip:+13122354000@x>;reason=unconditional;counter=1"}, {"call_forwarded"}),
    ("forwarded, invalid", {"diversion": "<sip:+10004181440@x>;reason=no-answer"},
     {"call_forwarded", "diversion_number_invalid"}),
]


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in SIGNALING_CASES], ids=[c[0] for c in SIGNALING_CASES])
def test_signaling_rules(changes: dict, expected: set[str]) -> None:
    found = signaling_findings(sig(**changes))
    assert factors(found) == expected, [f.detail for f in found]


def test_every_signaling_rule_has_a_case() -> None:
    covered = set().union(*(expected for _, _, expected in SIGNALING_CASES))
    assert covered == set(signals.WEIGHTS)


def test_signaling_details_say_why() -> None:
    by = {f.factor: f for f in signaling_findings(sig(diversion="<sip:+13122354000@x>;reason=unconditional",
                                                      p_asserted_identity="<sip:+13122354000@c.example>"))}
    assert by["call_forwarded"] == Finding("call_forwarded", 0, "forwarded by +13122354000 (unconditional)")
    assert "12024181440" in by["pai_mismatch"].detail and "+13122354000" in by["pai_mismatch"].detail
    [withheld] = signaling_findings(sig(privacy="id"))
    assert "Privacy: id" in withheld.detail


def test_from_a_channel_snapshot() -> None:
    """What the dialplan hands over, through signaling_from_channel: a caller posing with the number dialled."""
    channel = {"id": "1700000000.1", "name": "PJSIP/carrier-00000001",
               "caller": {"number": "+1 (888) 225-5322", "name": "FCC"},
               "dialplan": {"exten": "+18882255322"},
               "channelvars": {"RINGPOOL_PAI": "<sip:+18882255322@carrier.example;user=phone>",
                               "RINGPOOL_PRIVACY": "", "RINGPOOL_DIVERSION": "", "RINGPOOL_CHARGE": ""}}
    s = signaling_from_channel(channel)
    assert factors(number_findings(s.caller_number)) == {"nanp_toll_free_caller"}
    assert factors(signaling_findings(s)) == {"caller_is_called_number"}
