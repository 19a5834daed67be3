"""What is known about a call when something must be decided about it: IVR conditions, the quality score,
routing filters, buyers' bids and payouts all read the same facts, gathered once per call.

The facts grow as the call goes on (IVR answers, tags, the quality score), so the object is mutable and owned
by the call; everything that reads it is a pure function of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Region:
    """Where a caller's number is from, as far as the number says (no carrier lookup)."""

    country: str | None  # ISO 3166 alpha-2 ("US", "CA"), None when unknown
    state: str | None = None  # two-letter state or province code ("IL", "ON")
    area_code: str | None = None  # NANP area code ("312")
    description: str | None = None  # e.g. "Illinois"


@dataclass
class CallFacts:
    call_id: str
    campaign: str
    dialed_number: str
    caller_number: str | None  # digits, None when withheld
    arrived_at: datetime  # timezone-aware, UTC
    anonymous: bool = False
    region: Region | None = None
    # mobile, fixed_line, fixed_line_or_mobile, toll_free, premium_rate, voip, shared_cost, personal_number,
    # pager, uan, voicemail, unknown (a valid number of no known type), invalid, anonymous
    number_type: str = "unknown"
    earlier_calls: tuple[datetime, ...] = ()  # this caller's earlier calls (any campaign), newest first, 90 days
    repeat_caller: bool = False
    known_caller: bool = False  # a converted call from this caller before: an existing customer
    session: dict[str, Any] = field(default_factory=dict)  # the visitor: source, medium, keyword, device_type...
    variables: dict[str, str] = field(default_factory=dict)  # IVR answers, set variables, session custom vars
    tags: set[str] = field(default_factory=set)
    quality: int | None = None  # the call's quality score 0-100, once computed
    spam_score: int | None = None  # screening's score 1

    def calls_within(self, seconds: float) -> int:
        """Earlier calls from this caller in the last ``seconds`` before this one."""
        return sum(1 for at in self.earlier_calls if 0 <= (self.arrived_at - at).total_seconds() <= seconds)

    def public(self) -> dict[str, Any]:
        """The call's attributes without the caller's identity: what a buyer's bid URL or a decision URL
        outside Ringpool may see (seed 002: bid on attributes, not on who is calling)."""
        region = self.region
        return {
            "call_id": self.call_id, "campaign": self.campaign, "arrived_at": self.arrived_at.isoformat(),
            "region": {"country": region.country, "state": region.state, "area_code": region.area_code}
            if region else None,
            "number_type": self.number_type, "repeat_caller": self.repeat_caller,
            "quality": self.quality, "variables": dict(self.variables), "tags": sorted(self.tags),
            "source": self.session.get("source"), "medium": self.session.get("medium"),
            "keyword": self.session.get("keyword"), "device_type": self.session.get("device_type"),
        }
