"""Score 1: the pre-answer verdict on a call, from its signaling, its number's state and the caller's history.

Pure: the facts come from ScreeningStore, the settings from the campaign. Every verdict lists the factors that
made it, each with its weight, so the call record says why (seed 001, C20).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from ari_app.screening.model import Refusal, ScreeningSettings
from ari_app.screening.numbers import Finding, number_findings
from ari_app.screening.signals import signaling_findings
from ari_app.screening.store import Facts
from dialplan.signaling import Signaling

# Default weights (0-100 toward spam); a campaign's screening.weights overrides any of them by name.
WEIGHTS = {
    "rate": 40,  # more than rate_calls calls in rate_window
    "short_calls": 30,  # short_count short calls in short_window
    "identical_durations": 25,  # three or more recent calls of near-identical length
    "spam_before": 50,  # an earlier call from this caller was marked spam
    "quarantined": 35,  # this caller rang a number that was not in use
    "campaign_inactive": 30,  # the campaign has not started or has ended
    "outside_hours": 10,  # outside the campaign's hours
}
GREEN, YELLOW, RED = "green", "yellow", "red"


@dataclass(frozen=True)
class Verdict:
    action: str  # proceed, extra (the challenge), refuse, quarantine
    score: int
    color: str
    factors: tuple[Finding, ...] = ()
    refusal: Refusal | None = None
    candidate: bool = False  # rang a number not in use earlier: extra treatment, spam only if the scores say so
    rule: dict[str, Any] | None = None  # the list rule that decided, if one did

    def record(self) -> dict[str, Any]:
        """The call record's screening columns."""
        return {"score1": self.score, "score1_color": self.color, "candidate": int(self.candidate),
                "screening": {"action": self.action, "factors": [asdict(f) for f in self.factors],
                              "rule": {k: self.rule[k] for k in ("id", "list", "kind", "value", "campaign", "reason")}
                              if self.rule else None,
                              "refusal": asdict(self.refusal) if self.refusal else None}}


def color(score: int, settings: ScreeningSettings) -> str:
    return RED if score >= settings.reject_at else YELLOW if score >= settings.extra_at else GREEN


def assess(signaling: Signaling, facts: Facts, settings: ScreeningSettings, *, number_state: str | None,
           returning: bool, now: datetime, level: int = 0) -> Verdict:
    """``returning``: the caller is tied to an earlier visit on this number (attribution by caller history), so
    a call to the number after its lease ended is a late call, not a call to a number not in use."""
    if not settings.enabled:
        return Verdict("proceed", 0, GREEN)
    if number_state in settings.quarantine_states and not returning:
        finding = Finding("number_not_in_use", 100, f"the tracking number is {number_state}: quarantined")
        return Verdict("quarantine", 100, RED, (finding,), settings.quarantine)
    if facts.allow is not None:
        return Verdict("proceed", 0, GREEN, (Finding("allow_list", 0, _rule_text(facts.allow)),), rule=facts.allow)
    if facts.block is not None:
        return Verdict("refuse", 100, RED, (Finding("block_list", 100, _rule_text(facts.block)),), settings.refuse,
                       rule=facts.block)
    findings = [*number_findings(signaling.caller_number), *signaling_findings(signaling)]
    findings += history_findings(facts, settings)
    findings += campaign_findings(settings, now)
    findings = [Finding(f.factor, settings.weight(f.factor, f.weight), f.detail) for f in findings]
    score = min(100, sum(f.weight for f in findings))
    candidate = facts.quarantined_at is not None
    shade = color(score, settings)
    action = "refuse" if shade == RED else "extra" if shade == YELLOW or candidate else "proceed"
    if level:  # the campaign's countermeasures are raised (escalation): the least friction first
        new_caller = not facts.calls_in_window and not facts.durations
        if level >= 3 and shade == YELLOW:
            action = "refuse"
        elif action == "proceed" and (level >= 2 or new_caller):
            action = "extra"
        findings.append(Finding("escalation", 0, f"campaign countermeasure level {level}"))
    return Verdict(action, score, shade, tuple(findings), settings.refuse if action == "refuse" else None,
                   candidate=candidate)


def next_level(level: int, calls: int, bad: int, settings: ScreeningSettings) -> int:
    """The campaign's countermeasure level after a window with ``calls`` finished calls, ``bad`` of them short or
    spam: one step up at the ``up`` share, one step down below ``down``."""
    escalation = settings.escalation
    if escalation is None or calls < escalation.min_calls:
        return 0 if escalation is None else level
    share = bad / calls
    if share >= escalation.up:
        return min(escalation.max_level, level + 1)
    if share < escalation.down:
        return max(0, level - 1)
    return level


def history_findings(facts: Facts, settings: ScreeningSettings) -> list[Finding]:
    found = []
    if facts.calls_in_window + 1 > settings.rate_calls:
        found.append(Finding("rate", WEIGHTS["rate"], f"{facts.calls_in_window + 1} calls in "
                             f"{_span(settings.rate_window)} (more than {settings.rate_calls})"))
    if facts.short_calls >= settings.short_count:
        found.append(Finding("short_calls", WEIGHTS["short_calls"], f"{facts.short_calls} calls under "
                             f"{settings.short_seconds} s in {_span(settings.short_window)}"))
    recent = facts.durations[:5]
    if len(recent) >= 3 and max(recent) - min(recent) <= settings.identical_within:
        found.append(Finding("identical_durations", WEIGHTS["identical_durations"],
                             f"last {len(recent)} calls lasted {min(recent):.1f}-{max(recent):.1f} s"))
    if facts.spam_before:
        found.append(Finding("spam_before", WEIGHTS["spam_before"], "an earlier call from this number was spam"))
    if facts.quarantined_at:
        found.append(Finding("quarantined", WEIGHTS["quarantined"],
                             f"rang a tracking number not in use at {facts.quarantined_at}"))
    return found


def campaign_findings(settings: ScreeningSettings, now: datetime) -> list[Finding]:
    found = []
    today = now.date()
    if (settings.active_from and today < settings.active_from) or (settings.active_until and today > settings.active_until):
        found.append(Finding("campaign_inactive", WEIGHTS["campaign_inactive"],
                             f"the campaign runs {settings.active_from or '…'} to {settings.active_until or '…'}"))
    hours = settings.hours
    if hours is not None:
        from zoneinfo import ZoneInfo

        local = now.astimezone(ZoneInfo(hours.timezone))
        day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
        if day not in hours.days or not hours.open <= local.time() < hours.close:
            found.append(Finding("outside_hours", WEIGHTS["outside_hours"],
                                 f"{day} {local:%H:%M} {hours.timezone} is outside {hours.open:%H:%M}-"
                                 f"{hours.close:%H:%M} {', '.join(hours.days)}"))
    return found


def _rule_text(rule: dict[str, Any]) -> str:
    scope = f"campaign {rule['campaign']}" if rule.get("campaign") else "global"
    value = rule["value"].lstrip("0") if rule["kind"] == "range" else rule["value"]
    return f"{rule['list']} rule {rule['id']}: {rule['kind']} {value or '(any)'} ({scope}){': ' + rule['reason'] if rule.get('reason') else ''}"


def _span(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} day(s)"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} hour(s)"
    return f"{seconds} s"
