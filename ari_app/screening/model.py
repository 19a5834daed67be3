"""Screening settings: the `screening:` section (defaults for every campaign) and a campaign's own `screening:`
section, which overrides single keys of it.

Weights and thresholds are on a 0-100 spam scale. Score 1 is computed before answer from signaling and history;
below ``extra_at`` the call proceeds (green), from ``extra_at`` it proceeds with extra treatment (yellow: the
challenge IVR), from ``reject_at`` it is refused without answering (red).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from datetime import date, time
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ari_app.config import _Section

# SIP response -> the Q.850 cause Asterisk's chan_pjsip turns into it for an unanswered inbound call.
SIP_TO_CAUSE = {404: 1, 403: 21, 480: 19, 486: 17, 503: 34, 603: 16}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REFUSALS = ("reject", "ring", "announce", "answer_tone", "delay", "voice_check")
NOT_IN_USE = ("inventory", "idle", "cooldown", "retired")


@dataclass(frozen=True)
class Refusal:
    """How an unwanted call is refused. reject, ring and announce leave it unanswered, so the caller is never
    charged; the deterrents answer: answer_tone (a 2100 Hz modem answer tone), delay (ring ``seconds``, then
    answer with the not-in-service message) and voice_check (answer, and let a person who speaks press 1)."""

    action: Literal["reject", "ring", "announce", "answer_tone", "delay", "voice_check"] = "reject"
    code: int = 404  # reject: the SIP response
    seconds: int = 30  # ring: how long the caller hears ringing before Ringpool gives up; announce: the limit

    @property
    def cause(self) -> int:
        return SIP_TO_CAUSE[self.code]


@dataclass(frozen=True)
class Hours:
    """When the campaign takes calls; outside them a call scores ``weights['outside_hours']``."""

    days: tuple[str, ...] = DAYS[:5]
    open: time = time(8, 0)
    close: time = time(20, 0)
    timezone: str = "UTC"


@dataclass(frozen=True)
class Escalation:
    """Seed 001, C18: when the share of short or spam calls in ``window`` reaches ``up``, the campaign moves to
    the next countermeasure level; when it falls below ``down``, one level back. Level 1 challenges callers
    with no history, level 2 every caller not on an allow list, level 3 refuses yellow scores too."""

    window: int = 3600
    min_calls: int = 10  # fewer calls than this in the window say nothing
    up: float = 0.5
    down: float = 0.2
    max_level: int = 3


@dataclass(frozen=True)
class ScreeningSettings:
    enabled: bool = True
    quarantine: Refusal = Refusal("reject", 404)  # calls to numbers not in use
    quarantine_states: tuple[str, ...] = ("inventory", "idle", "cooldown")
    candidate_days: int = 90  # a quarantined caller stays a spam candidate this long
    refuse: Refusal = Refusal("reject", 603)  # block-list hits and red scores
    extra_at: int = 30
    reject_at: int = 70
    rate_calls: int = 5  # more than this many calls ...
    rate_window: int = 3 * 86400  # ... in this many seconds
    short_seconds: int = 10  # a call shorter than this is "short"
    short_count: int = 3  # this many short calls in short_window trip the rule
    short_window: int = 7 * 86400
    identical_within: float = 2.0  # seconds: durations this close are "near-identical"
    challenge_tries: int = 2
    challenge_wait: int = 6  # seconds for the digit after the prompt
    presence_seconds: int = 5  # seconds to hear a voice or background noise
    block_seconds: int = 86400  # a caller who fails the challenge is blocked this long
    spam_at: int = 60  # score 2 at or above this marks the call spam
    active_from: date | None = None  # the campaign's dates: a call outside them is in an unlikely state
    active_until: date | None = None
    hours: Hours | None = None
    signature_block: bool = False  # a call matching a spam announcement: False flags it, True refuses it
    weights: dict[str, int] = field(default_factory=dict)  # override a factor's weight by name
    escalation: "Escalation | None" = None  # None: the campaign never raises its countermeasures by itself

    def weight(self, factor: str, default: int) -> int:
        return self.weights.get(factor, default)


def _refusal(s: "_Section", base: Refusal) -> Refusal:
    action = s.string("action", base.action)
    if action not in REFUSALS:
        raise s.error("action", f"{action!r}: expected one of {', '.join(REFUSALS)}")
    code = s.integer("code", base.code, low=400, high=699)
    if code not in SIP_TO_CAUSE:
        raise s.error("code", f"{code}: expected one of {', '.join(map(str, sorted(SIP_TO_CAUSE)))}")
    refusal = Refusal(action, code, s.integer("seconds", base.seconds, low=1, high=600))
    s.reject_unknown()
    return refusal


def _date(s: "_Section", name: str, default: date | None) -> date | None:
    value = s.raw(name, default)
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise s.error(name, f"{value!r}: expected a date like 2026-12-31") from None


def _hours(s: "_Section") -> Hours:
    days = s.string_list("days") or list(DAYS[:5])
    for day in days:
        if day not in DAYS:
            raise s.error("days", f"{day!r}: expected some of {', '.join(DAYS)}")
    clock = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    opens = s.string("open", "08:00", pattern=clock, hint="HH:MM")
    closes = s.string("close", "20:00", pattern=clock, hint="HH:MM")
    zone = s.string("timezone", "UTC")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(zone)
    except Exception:
        raise s.error("timezone", f"{zone!r} is not a time zone such as America/New_York") from None
    hours = Hours(tuple(days), time.fromisoformat(opens), time.fromisoformat(closes), zone)
    s.reject_unknown()
    return hours


def _share(s: "_Section", name: str, default: float) -> float:
    value = s.raw(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise s.error(name, "expected a share from 0 to 1, e.g. 0.5")
    return float(value)


def _escalation(s: "_Section") -> Escalation:
    escalation = Escalation(window=s.integer("window", 3600, low=60, high=30 * 86400),
                            min_calls=s.integer("min_calls", 10, low=1, high=1_000_000),
                            up=_share(s, "up", 0.5), down=_share(s, "down", 0.2),
                            max_level=s.integer("max_level", 3, low=1, high=3))
    if escalation.down >= escalation.up:
        raise s.error("down", f"{escalation.down} must be below up ({escalation.up})")
    s.reject_unknown()
    return escalation


def read_screening(s: "_Section", base: ScreeningSettings) -> ScreeningSettings:
    """A `screening:` section over ``base`` (the defaults, or the global section for a campaign's own)."""
    if not s.data:
        return base
    ints = {f.name for f in fields(ScreeningSettings) if f.type in ("int",)}
    values: dict[str, Any] = {}
    limits = {"extra_at": (0, 101), "reject_at": (1, 101), "spam_at": (1, 101)}
    for name in sorted(ints):
        if name in s.data:
            low, high = limits.get(name, (0, 10 * 365 * 86400))
            values[name] = s.integer(name, low=low, high=high)
    if "enabled" in s.data:
        values["enabled"] = s.boolean("enabled", True)
    if "signature_block" in s.data:
        values["signature_block"] = s.boolean("signature_block", False)
    if "identical_within" in s.data:
        raw = s.raw("identical_within")
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 <= raw <= 60:
            raise s.error("identical_within", "expected seconds from 0 to 60")
        values["identical_within"] = float(raw)
    for name in ("quarantine", "refuse"):
        if name in s.data:
            values[name] = _refusal(s.section(name), getattr(base, name))
    if "quarantine_states" in s.data:
        states = s.string_list("quarantine_states")
        for state in states:
            if state not in NOT_IN_USE:
                raise s.error("quarantine_states", f"{state!r}: expected some of {', '.join(NOT_IN_USE)}")
        values["quarantine_states"] = tuple(states)
    for name in ("active_from", "active_until"):
        if name in s.data:
            values[name] = _date(s, name, None)
    if "hours" in s.data:
        values["hours"] = _hours(s.section("hours"))
    if "escalation" in s.data:
        values["escalation"] = _escalation(s.section("escalation"))
    if "weights" in s.data:
        raw = s.raw("weights")
        if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
                                                and 0 <= v <= 100 for k, v in raw.items()):
            raise s.error("weights", "expected factor names with whole numbers 0-100")
        values["weights"] = {**base.weights, **raw}
    settings = replace(base, **values)
    if settings.extra_at > settings.reject_at:
        raise s.error("extra_at", f"{settings.extra_at} is above reject_at {settings.reject_at}")
    s.reject_unknown()
    return settings

