"""Score 2: what happened on the answered call says whether it was a machine (seed 001, C10, C20, C21).

Pure functions over the call's detections and timings; the call flow writes the result on the record and marks
the call spam when the score reaches the campaign's ``spam_at``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from ari_app.media.interpret import FAX_ANSWER_VARIANTS
from ari_app.screening.model import ScreeningSettings
from ari_app.screening.numbers import Finding
from detectors import events as kinds

DIALER_TONES = frozenset({kinds.FAX_CNG, kinds.V21_PREAMBLE, kinds.ANSWER_TONE})  # fax and modem signalling
NETWORK_TONES = frozenset({kinds.BUSY, kinds.REORDER, kinds.SIT})
VOICE = frozenset({kinds.SPEECH_START, kinds.SPEECH})
LONG_CALL = 60.0  # seconds: a long bridged call with a voice on it is not dropped for a tone (C21)
WEIGHTS = {
    "fax_tone": 70, "modem_tone": 70, "no_speech": 25, "machine_dtmf": 30, "dtmf_abcd": 30,
    "network_tone": 30, "very_short": 15, "caller_hung_up_at_once": 10, "challenge_failed": 60,
    "announcement_match": 60, "silent_caller": 60,
}
SILENT_AFTER = 6.0  # seconds listened to an answered caller without a voice or a sound: a silent dialer


class DetectionLike(Protocol):
    leg: str
    kind: str
    details: dict[str, Any]


@dataclass(frozen=True)
class Score2:
    score: int
    factors: tuple[Finding, ...]

    def spam(self, settings: ScreeningSettings) -> bool:
        return self.score >= settings.spam_at


def dialer_tone(detections: Iterable[DetectionLike]) -> DetectionLike | None:
    """The first fax or modem tone from the caller: a machine, whatever else is on the line."""
    return next((d for d in detections if d.leg == "caller" and d.kind in DIALER_TONES), None)


def keep_despite_tone(detections: Iterable[DetectionLike], bridged_seconds: float) -> bool:
    """C21's exception: a call already long, with a voice on it, is a person who (say) started a fax."""
    return bridged_seconds >= LONG_CALL and any(d.kind in VOICE for d in detections)


def score2(detections: list[DetectionLike], settings: ScreeningSettings, *, answered: bool, total_seconds: float,
           hangup_side: str | None, seconds_after_answer: float | None, challenge_failed: bool,
           announcement: dict[str, Any] | None = None, listened_seconds: float | None = None) -> Score2:
    caller = [d for d in detections if d.leg == "caller"]
    found: list[Finding] = []
    tone = dialer_tone(caller)
    if tone is not None:
        factor = "modem_tone" if tone.kind == kinds.ANSWER_TONE and \
            tone.details.get("variant") not in FAX_ANSWER_VARIANTS else "fax_tone"
        found.append(Finding(factor, WEIGHTS[factor], f"{tone.kind.replace('_', ' ')} from the caller"))
    if listened_seconds is not None and listened_seconds >= SILENT_AFTER and tone is None \
            and not any(d.kind in VOICE for d in caller):
        found.append(Finding("silent_caller", WEIGHTS["silent_caller"],
                             f"not a word or a sound from the caller in {listened_seconds:.0f} s of listening"))
    elif any(d.kind == kinds.NO_SPEECH for d in caller):
        found.append(Finding("no_speech", WEIGHTS["no_speech"], "no speech from the caller after the prompt"))
    if any(d.kind == kinds.DTMF_MACHINE for d in caller):
        found.append(Finding("machine_dtmf", WEIGHTS["machine_dtmf"], "touch tones dialled like a machine"))
    abcd = sorted({str(d.details.get("digit")) for d in caller if d.kind == kinds.DTMF
                   and str(d.details.get("digit")) in "ABCD"})
    if abcd:
        found.append(Finding("dtmf_abcd", WEIGHTS["dtmf_abcd"], f"DTMF {''.join(abcd)}: not on a phone's keypad"))
    network = sorted({d.kind for d in caller if d.kind in NETWORK_TONES})
    if network:
        found.append(Finding("network_tone", WEIGHTS["network_tone"], f"{', '.join(network)} tone from the caller"))
    if answered and total_seconds < settings.short_seconds:
        found.append(Finding("very_short", WEIGHTS["very_short"], f"{total_seconds:.1f} s in all"))
    if hangup_side == "caller" and seconds_after_answer is not None and seconds_after_answer < 3:
        found.append(Finding("caller_hung_up_at_once", WEIGHTS["caller_hung_up_at_once"],
                             f"the caller hung up {seconds_after_answer:.1f} s after answer"))
    if challenge_failed:
        found.append(Finding("challenge_failed", WEIGHTS["challenge_failed"], "failed the challenge"))
    if announcement:
        found.append(Finding("announcement_match", WEIGHTS["announcement_match"],
                             f"the opening matches spam announcement {announcement['signature']} "
                             f"(similarity {announcement['score']})"))
    found = [Finding(f.factor, settings.weight(f.factor, f.weight), f.detail) for f in found]
    return Score2(min(100, sum(f.weight for f in found)), tuple(found))
