"""The caller ID a destination sees (seed 000, call forwarding): the caller's own number, the tracking number
that was dialed (so the desk knows which campaign rings), a fixed number, or a mask that keeps some of the
caller's digits ("212XXXXXXX": the caller's last seven digits behind a 212 area code)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

_FIXED_RE = re.compile(r"^\+?[0-9]{3,20}$")
_MASK_RE = re.compile(r"^[0-9X]{10,11}$")
_SEPARATORS = str.maketrans("", "", " -().")


@dataclass(frozen=True)
class CallerIdMode:
    kind: Literal["original", "tracking", "fixed", "mask"] = "original"
    value: str = ""  # fixed: the number (digits, optional +); mask: 10-11 digits and X


def parse_caller_id(value: object) -> CallerIdMode:
    """``original`` | ``tracking`` | a number (``"+13125550000"``) | ``"mask:212XXXXXXX"``; raises ValueError
    saying what is wrong (the config reader locates it)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("expected original, tracking, a phone number or mask:212XXXXXXX")
    text = str(value).strip()
    if text in ("original", "tracking"):
        return CallerIdMode(text)  # type: ignore[arg-type]
    if text.startswith("mask:"):
        mask = text[5:].translate(_SEPARATORS).upper()
        if not _MASK_RE.match(mask):
            raise ValueError(f"{text!r}: a mask is 10 or 11 characters, digits and X (mask:212XXXXXXX)")
        if "X" not in mask:
            raise ValueError(f"{text!r}: a mask without X is a fixed number: write it without mask:")
        return CallerIdMode("mask", mask)
    number = text.translate(_SEPARATORS)
    if not _FIXED_RE.match(number):
        raise ValueError(f"{text!r}: expected original, tracking, a phone number (3-20 digits, optional +) "
                         "or mask:212XXXXXXX")
    return CallerIdMode("fixed", number)


def present_caller_id(mode: CallerIdMode, *, caller: str | None, tracking: str) -> tuple[str | None, str]:
    """The number to present and why. ``caller``: the caller's digits, None when withheld (or when the caller
    asked for privacy: it is never revealed). None means present the call as withheld."""
    match mode.kind:
        case "original":
            if caller is None:
                return None, "original: the caller withheld their number"
            return caller, "original: the caller's number"
        case "tracking":
            return tracking, "tracking: the number the caller dialed"
        case "fixed":
            return mode.value, "fixed number"
    digits = "".join(ch for ch in caller or "" if ch.isdigit())
    needed = len(mode.value) - mode.value.index("X")  # the X farthest from the end
    if caller is None:
        return tracking, f"mask {mode.value}: the caller withheld their number, presenting the tracking number"
    if len(digits) < needed:
        return tracking, (f"mask {mode.value}: the caller's number {caller!r} is too short to fill it, "
                          "presenting the tracking number")
    # end-aligned: the mask's last character takes the caller's last digit
    tail = digits[-len(mode.value):].rjust(len(mode.value), "0")
    masked = "".join(c if m == "X" else m for m, c in zip(mode.value, tail))
    return masked, f"mask {mode.value}"
