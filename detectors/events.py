"""The one event type every detector emits, and the names of its kinds."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Kinds (plain strings so they log and serialise without ceremony).
DTMF = "dtmf"                  # details: digit, gap_s, level_dbfs, twist_db, dev_low_pct, dev_high_pct, machine_like
DTMF_MACHINE = "dtmf_machine"  # details: reasons, digits  (machine-like dialling, once per stream)
FAX_CNG = "fax_cng"            # details: freq_hz, burst, period_s
ANSWER_TONE = "answer_tone"    # details: freq_hz, variant (ans|ans_pr|ansam|ansam_pr|bell), am_depth, reversals, ongoing
V21_PREAMBLE = "v21_preamble"  # details: mark_space_ratio, ongoing
BUSY = "busy"                  # details: cycles, on_s, off_s
REORDER = "reorder"            # details: cycles, on_s, off_s
RINGBACK = "ringback"          # details: ring
DIAL_TONE = "dial_tone"        # details: ongoing
SIT = "sit"                    # details: code, name, segments [(freq, dur)]
SPEECH_START = "speech_start"  # details: level_dbfs
SPEECH = "speech"              # details: level_dbfs  (a whole utterance, emitted at its end)
SILENCE = "silence"            # details: digital (bool), level_dbfs
NO_SPEECH = "no_speech"        # details: within_s  (expect_speech timer expired)
AMD = "amd"                    # details: status HUMAN|MACHINE|NOTSURE, cause (like AMDCAUSE), words
TRANSCRIPT = "transcript"      # details: text, final
KEYWORD = "keyword"            # details: rule, expression, terms, text


@dataclass(slots=True)
class Event:
    """Something detected in a stream.

    start and duration are seconds of stream time (samples fed / rate), so
    events from different calls and from the pipeline's speech thread line up.
    """

    kind: str
    start: float
    duration: float
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # plain floats (detectors compute in numpy) rounded to 0.1 ms
        self.start = round(float(self.start), 4)
        self.duration = round(float(self.duration), 4)

    @property
    def end(self) -> float:
        return self.start + self.duration
