"""The pre-answer decision: a pure function from signaling and configuration to an action and its reasons.

Kept apart from the ARI code so it can be tested alone and extended (screening adds block lists, rules and
scores here) without touching call handling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ari_app.config import Campaign, Destination, Settings, TrackingNumber
from ari_app.screening.model import Refusal
from ari_app.screening.score import Verdict
from ari_app.tracking.attribution import NumberInfo
from dialplan.signaling import Signaling

CAUSE_UNALLOCATED = 1  # Q.850 "unallocated number", sent by Asterisk as SIP 404 Not Found


class Action(str, Enum):
    PROCEED = "proceed"
    REJECT = "reject"


@dataclass(frozen=True)
class Route:
    tracking_number: TrackingNumber
    campaign: Campaign
    destinations: tuple[Destination, ...]  # in order: primary, then fallback
    fallback_message: str | None


@dataclass(frozen=True)
class Decision:
    action: Action
    reasons: tuple[str, ...]
    route: Route | None = None
    hangup_cause: int | None = None
    details: dict[str, str] = field(default_factory=dict)
    refusal: Refusal | None = None  # how to refuse: reject with a code, ring unanswered, or announce
    verdict: Verdict | None = None  # screening's score 1, its factors, and whether to challenge the caller

    @property
    def challenge(self) -> bool:
        return self.verdict is not None and self.verdict.action == "extra"


NOT_IN_USE = ("inventory", "retired")


def decide(signaling: Signaling, settings: Settings, known: NumberInfo | None = None,
           verdict: Verdict | None = None) -> Decision:
    """``known`` is the dialed number as the database has it (pools grow from the inventory at run time);
    without it, the configured numbers are used. ``verdict`` is screening's score 1 for the call."""
    number = settings.numbers.get(signaling.dialed_number)
    if known is not None and verdict is not None and verdict.action == "quarantine" and verdict.refusal:
        return Decision(Action.REJECT, (f"tracking number not in use ({known.state}): caller quarantined",),
                        hangup_cause=verdict.refusal.cause, details={"number_state": known.state},
                        refusal=verdict.refusal, verdict=verdict)
    if known is not None:
        if known.state in NOT_IN_USE or not known.active or known.campaign not in settings.campaigns:
            # recorded like every call; screening decides what more to do with callers of unused numbers
            return Decision(Action.REJECT, (f"tracking number not in use ({known.state})",),
                            hangup_cause=CAUSE_UNALLOCATED, details={"number_state": known.state})
        number = TrackingNumber(known.number, known.campaign, known.pool, known.role)
    if number is None:
        return Decision(Action.REJECT, ("dialed number is not a tracking number",),
                        hangup_cause=CAUSE_UNALLOCATED)
    campaign = settings.campaigns[number.campaign]
    destinations = [settings.destinations[campaign.destination]]
    if campaign.fallback.destination and campaign.fallback.destination != campaign.destination:
        destinations.append(settings.destinations[campaign.fallback.destination])
    route = Route(tracking_number=number, campaign=campaign, destinations=tuple(destinations),
                  fallback_message=campaign.fallback.message)
    if verdict is not None and verdict.action == "refuse" and verdict.refusal:
        why = verdict.factors[0].detail if verdict.rule else f"spam score {verdict.score} ({verdict.color})"
        # the route stays on the decision: a voice_check refusal lets a person through to it
        return Decision(Action.REJECT, (f"screening: {why}",), route=route, hangup_cause=verdict.refusal.cause,
                        refusal=verdict.refusal, verdict=verdict)
    where = f" (pool {number.pool}, {known.state if known else number.role})" if number.pool else ""
    reasons = [f"tracking number of campaign {campaign.name}{where}"]
    if verdict is not None and verdict.action == "extra":
        reasons.append(f"screening: score {verdict.score} ({verdict.color})"
                       + (", quarantined caller" if verdict.candidate else "") + ": challenge")
    return Decision(Action.PROCEED, tuple(reasons), route=route, verdict=verdict)
