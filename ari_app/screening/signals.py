"""Signaling rules for pre-answer screening (issue 5; seed 001, C2, C4, C7, C8 and C20).

Pure functions, no I/O, linear in the (already length-capped) header values. ``signaling_findings`` judges what
the network said about the caller, not the caller number itself: ``numbers.number_findings`` does that, and
the scorer adds both lists, so nothing here repeats a number finding for the caller number (an invalid PAI,
charge or Diversion number that is the caller number is not reported again).

| factor | weight | when |
|---|---|---|
| caller_number_missing | 30 | no caller number at all, and no Privacy request to explain it (C8) |
| caller_withheld | 15 | Privacy: id, user or header, or a caller number such as anonymous, restricted, private |
| caller_unavailable | 20 | caller number unavailable, unknown or out of area: the network could not deliver it |
| caller_number_not_numeric | 20 | a caller number with no digits that is none of the words above |
| pai_absent | 0 | no P-Asserted-Identity (note only: many trunks never send it) |
| pai_number_invalid | 20 | the P-Asserted-Identity number is not a valid number (unless it is the caller number) |
| pai_mismatch | 15 | the caller number is not the P-Asserted-Identity number (spoofing hint; PBXs do it too) |
| caller_is_called_number | 30 | the caller number is the number dialled ("calls from your own number") |
| caller_shares_called_prefix | 10 | same NPA-NXX as the number dialled, but a different line ("neighbour spoofing") |
| caller_name_missing | 5 | no caller name (C7: an unknown name raises the likelihood) |
| caller_name_unknown | 5 | the name is a placeholder: unknown, unavailable, private, out of area, ... |
| caller_name_is_number | 5 | the name is only digits and punctuation |
| caller_name_single_letter | 10 | the name is one letter (C7; also the Bellcore "P" private / "O" out of area marks) |
| caller_name_spam_label | 30 | the name carries an upstream spam label: "SCAM LIKELY", "SPAM RISK", "FRAUD?" |
| charge_info_unparseable | 10 | P-Charge-Info present but holds no number |
| charge_number_invalid | 15 | the P-Charge-Info number is not a valid number (C4: the charge number is network-set) |
| call_forwarded | 0 | a Diversion header: forwarded calls are normal; noted with who forwarded it and why |
| diversion_number_invalid | 10 | the Diversion number is not a valid number |

Left out on purpose: an all-capitals name (CNAM names are capitals by convention) and a name that is a
place (``NEW YORK NY`` is what CNAM gives many real mobile numbers). When the caller is withheld, the missing
or placeholder name is part of the same fact and is not counted again.
"""

from __future__ import annotations

from typing import Any

from ari_app.screening.numbers import (MAX_INPUT, STRUCTURAL, Finding, ParsedNumber, header_values, number_findings,
                                       number_text, parse_number, show)

WEIGHTS: dict[str, int] = {
    "caller_number_missing": 30,
    "caller_withheld": 15,
    "caller_unavailable": 20,
    "caller_number_not_numeric": 20,
    "pai_absent": 0,
    "pai_number_invalid": 20,
    "pai_mismatch": 15,
    "caller_is_called_number": 30,
    "caller_shares_called_prefix": 10,
    "caller_name_missing": 5,
    "caller_name_unknown": 5,
    "caller_name_is_number": 5,
    "caller_name_single_letter": 10,
    "caller_name_spam_label": 30,
    "charge_info_unparseable": 10,
    "charge_number_invalid": 15,
    "call_forwarded": 0,
    "diversion_number_invalid": 10,
}

PRIVACY_HIDING = frozenset({"id", "user", "header"})  # RFC 3323 / RFC 3325 priv-values that withhold identity
WITHHELD_WORDS = frozenset({"anonymous", "restricted", "private", "withheld", "blocked", "presentation restricted",
                            "private number", "p"})
UNAVAILABLE_WORDS = frozenset({"unavailable", "unknown", "out of area", "outofarea", "not available", "o"})
NAME_PLACEHOLDERS = frozenset({
    "unknown", "unknown caller", "unknown name", "unavailable", "not available", "anonymous", "private",
    "private caller", "private name", "private number", "restricted", "withheld", "blocked", "out of area",
    "no caller id", "caller id blocked", "name unavailable", "name not available",
})
SPAM_WORDS = frozenset({"spam", "scam", "fraud", "robocall", "telemarketer", "telemarketing"})


def _f(factor: str, detail: str) -> Finding:
    return Finding(factor, WEIGHTS[factor], detail)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)[:MAX_INPUT].strip()
    return text or None


def _words(text: str) -> list[str]:
    """Lower-case words: runs of letters and digits."""
    words, current = [], []
    for ch in text.lower():
        if ch.isalnum():
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def privacy_values(privacy: str | None) -> set[str]:
    """The priv-values of a Privacy header (``id``, ``user; id``, ``none``), lower case."""
    if not privacy:
        return set()
    return {word for word in _words(privacy)[:16]}


def same_number(a: ParsedNumber, b: ParsedNumber) -> bool:
    """The same number in two spellings: equal with their country codes, or one (7 digits or more) the end of
    the other (a national form without the country code the parser could not infer)."""
    x, y = a.canonical, b.canonical
    if x == y:
        return True
    short, long_ = (x, y) if len(x) <= len(y) else (y, x)
    return len(short) >= 7 and long_.endswith(short)


def _numbers(header: str) -> list[tuple[str, ParsedNumber]]:
    found = []
    for value in header_values(header):
        text = number_text(value)
        parsed = parse_number(text) if text is not None else None
        if parsed is not None and text is not None:
            found.append((text, parsed))
    return found


def _why_invalid(text: str) -> str | None:
    """The first structural finding's detail for a number, or None if it is valid."""
    for finding in number_findings(text):
        if finding.factor in STRUCTURAL:
            return finding.detail
    return None


def _param(header: str, name: str) -> str | None:
    low = header.lower()
    at = low.find(name + "=")
    if at == -1:
        return None
    value = header[at + len(name) + 1:]
    for stop in (";", ",", ">", " "):
        cut = value.find(stop)
        if cut != -1:
            value = value[:cut]
    return value.strip('"') or None


def _caller_findings(caller: str | None, parsed: ParsedNumber | None, hiding: set[str]) -> tuple[list[Finding], bool]:
    """Findings about the caller number's presence, and whether the caller is withheld or absent."""
    asked = f"Privacy: {'; '.join(sorted(hiding))}" if hiding else ""
    if caller is None:
        if hiding:
            return [_f("caller_withheld", f"no caller number; {asked} asks to withhold the identity")], True
        return [_f("caller_number_missing", "the call has no caller number")], True
    if parsed is None:
        word = " ".join(_words(caller))
        if word in WITHHELD_WORDS or hiding:
            why = f"{asked} asks to withhold the identity" if hiding else "the caller withheld the number"
            return [_f("caller_withheld", f"caller number {show(caller)!r}: {why}")], True
        if word in UNAVAILABLE_WORDS:
            return [_f("caller_unavailable", f"caller number {show(caller)!r}: the network did not deliver it")], True
        return [_f("caller_number_not_numeric", f"caller number {show(caller)!r} has no digits")], True
    if hiding:
        return [_f("caller_withheld", f"{asked} asks to withhold caller number {show(caller)}")], False
    return [], False


def _name_findings(name: str | None, caller: ParsedNumber | None, withheld: bool) -> list[Finding]:
    if name is None:
        return [] if withheld else [_f("caller_name_missing", "no caller name")]
    words = _words(name)
    label = [w for w in words if w in SPAM_WORDS]
    if label:
        return [_f("caller_name_spam_label", f"caller name {show(name)!r} carries a spam label upstream")]
    if " ".join(words) in NAME_PLACEHOLDERS:
        return [] if withheld else [_f("caller_name_unknown", f"caller name {show(name)!r} is a placeholder")]
    letters = sum(1 for ch in name if ch.isalpha())
    if letters == 0 and any(ch.isdigit() for ch in name):
        as_number = parse_number(name)
        same = caller is not None and as_number is not None and same_number(caller, as_number)
        return [_f("caller_name_is_number", f"caller name {show(name)!r} is a number"
                   f"{', the caller number' if same else ''}")]
    if letters == 1 and not any(ch.isdigit() for ch in name):
        return [_f("caller_name_single_letter", f"caller name {show(name)!r} is a single letter")]
    return []


def signaling_findings(signaling: Any) -> list[Finding]:
    """Why the signaling of a call (a ``dialplan.signaling.Signaling``) looks unwanted; notes of weight 0 say
    what was seen without counting it. Never raises on odd values."""
    caller = _text(getattr(signaling, "caller_number", None))
    caller_parsed = parse_number(caller)
    hiding = privacy_values(_text(getattr(signaling, "privacy", None))) & PRIVACY_HIDING
    found, withheld = _caller_findings(caller, caller_parsed, hiding)

    pai = _text(getattr(signaling, "p_asserted_identity", None))
    if pai is None:
        found.append(_f("pai_absent", "no P-Asserted-Identity: the network did not assert who is calling"))
    else:
        asserted = _numbers(pai)
        for text, parsed in asserted:
            if caller_parsed is not None and same_number(caller_parsed, parsed):
                continue  # the caller number itself: number_findings already judged it
            why = _why_invalid(text)
            if why:
                found.append(_f("pai_number_invalid", f"P-Asserted-Identity {show(text)}: {why}"))
                break
        if caller_parsed is not None and asserted and not any(same_number(caller_parsed, p) for _, p in asserted):
            found.append(_f("pai_mismatch", f"caller number {show(caller or '')} is not the asserted identity "
                            f"{show(asserted[0][0])}"))

    dialed = parse_number(_text(getattr(signaling, "dialed_number", None)))
    if caller_parsed is not None and dialed is not None:
        if same_number(caller_parsed, dialed):
            found.append(_f("caller_is_called_number", f"the caller number {show(caller or '')} is the number dialled"))
        elif (caller_parsed.kind == dialed.kind == "nanp" and len(caller_parsed.national) == 10
              and len(dialed.national) == 10 and caller_parsed.national[:6] == dialed.national[:6]):
            npa_nxx = f"{dialed.national[:3]}-{dialed.national[3:6]}"
            found.append(_f("caller_shares_called_prefix", f"the caller has the dialled number's {npa_nxx} prefix"))

    found += _name_findings(_text(getattr(signaling, "caller_name", None)), caller_parsed, withheld)

    charge = _text(getattr(signaling, "p_charge_info", None))
    if charge is not None:
        charged = _numbers(charge)
        if not charged:
            found.append(_f("charge_info_unparseable", f"P-Charge-Info {show(charge)!r} holds no number"))
        elif caller_parsed is None or not same_number(caller_parsed, charged[0][1]):
            why = _why_invalid(charged[0][0])
            if why:
                found.append(_f("charge_number_invalid", f"charge number {show(charged[0][0])}: {why}"))

    diversion = _text(getattr(signaling, "diversion", None))
    if diversion is not None:
        diverted = _numbers(diversion)
        reason = _param(diversion, "reason")
        by = f"by {show(diverted[0][0])}" if diverted else "(no number)"
        found.append(_f("call_forwarded", f"forwarded {by}{f' ({show(reason, 24)})' if reason else ''}"))
        if diverted and (caller_parsed is None or not same_number(caller_parsed, diverted[0][1])):
            why = _why_invalid(diverted[0][0])
            if why:
                found.append(_f("diversion_number_invalid", f"Diversion number {show(diverted[0][0])}: {why}"))
    return found
