"""What a detection means for the call record: the one place that maps detector events to call flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from detectors import events as kinds
from detectors.events import Event

FAX_ANSWER_VARIANTS = {"ans", "ans_pr"}  # plain 2100 Hz (CED); ANSam is V.8 modems, Bell 2225 Hz is a modem


@dataclass(frozen=True)
class Detection:
    leg: str     # "caller" or "destination"
    source: str  # "inband" (our detectors on the audio) or "rfc4733" (Asterisk's DTMF events)
    kind: str
    start: float | None
    duration: float | None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: Event, leg: str) -> "Detection":
        return cls(leg=leg, source="inband", kind=event.kind, start=round(event.start, 3),
                   duration=round(event.duration, 3) if event.duration is not None else None,
                   details=dict(event.details or {}))

    def flags(self) -> dict[str, int]:
        """Boolean columns of the call this detection sets."""
        kind, details = self.kind, self.details
        if kind in (kinds.FAX_CNG, kinds.V21_PREAMBLE):
            return {"fax_detected": 1}
        if kind == kinds.ANSWER_TONE:
            return {"fax_detected": 1} if details.get("variant") in FAX_ANSWER_VARIANTS else {"modem_detected": 1}
        if kind in (kinds.SPEECH_START, kinds.SPEECH):
            return {"voice_detected": 1}
        if kind == kinds.SILENCE:
            return {"silence_detected": 1}
        if kind == kinds.DTMF_MACHINE:
            return {"machine_dtmf": 1}
        return {}

    def appends(self) -> dict[str, str]:
        """Text columns of the call this detection extends."""
        if self.kind == kinds.DTMF and self.details.get("digit"):
            return {"dtmf_digits": str(self.details["digit"])}
        if self.kind == kinds.TRANSCRIPT and self.details.get("final") and self.details.get("text"):
            return {"transcript": str(self.details["text"]) + " "}
        if self.kind == kinds.KEYWORD and self.details.get("rule"):
            return {"keywords": str(self.details["rule"]) + ","}
        return {}

    def values(self) -> dict[str, Any]:
        if self.kind == kinds.AMD:
            return {"amd_result": f"{self.details.get('status')}:{self.details.get('cause')}"}
        return {}
