"""Answering-machine detection, the app_amd algorithm, vectorised over streams.

Same parameters, defaults and decision order as Asterisk's app_amd, so results
and AMDCAUSE strings can be compared with a dialplan AMD() one to one:
20 ms frames, a frame is silent when its mean |sample| < silence_threshold;
words are voice runs >= min_word_length separated by >= between_words_silence.
Defaults are those of amd.conf as shipped (maximum_number_of_words = 2; the C
source's compiled-in fallback is 3, but app_amd refuses to load without
amd.conf, so 2 is what a stock Asterisk 22 uses).  As in app_amd the first
word is not counted unless silence preceded it, and reaching (not exceeding)
maximum_number_of_words means MACHINE.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .events import AMD, Event
from .goertzel import SUB_BLOCK_S

HUMAN, MACHINE, NOTSURE = "HUMAN", "MACHINE", "NOTSURE"
FRAME_MS = 20
SUBS_PER_FRAME = int(round(FRAME_MS / 1000 / SUB_BLOCK_S))


@dataclass
class AMDParams:
    initial_silence: int = 2500
    greeting: int = 1500
    after_greeting_silence: int = 800
    total_analysis_time: int = 5000
    min_word_length: int = 100
    between_words_silence: int = 50
    maximum_number_of_words: int = 2
    silence_threshold: int = 256
    maximum_word_length: int = 5000


_FIELDS = list(AMDParams.__dataclass_fields__)


class AMDBank:
    """Per-stream app_amd state machines; a stream analyses only while armed."""

    def __init__(self, n: int, c0: np.ndarray):
        self.n, self.c0 = n, c0
        self.p = {f: np.zeros(n, np.int64) for f in _FIELDS}
        self.armed = np.zeros(n, bool)
        self.armed_at = np.zeros(n, np.int64)
        z = lambda: np.zeros(n, np.int64)  # noqa: E731
        self.total, self.dsp_sil, self.sil_dur, self.voice, self.cons, self.words = z(), z(), z(), z(), z(), z()
        self.in_initial = np.ones(n, bool)
        self.in_greeting = np.zeros(n, bool)
        self.in_word = np.ones(n, bool)  # app_amd starts in STATE_IN_WORD
        self.abs_acc = np.zeros(n)
        self.n_acc = np.zeros(n, np.int64)

    def arm(self, i: int, params: AMDParams, hop: int) -> None:
        for f, v in asdict(params).items():
            self.p[f][i] = int(v)
        self.armed[i] = True
        self.armed_at[i] = hop
        for a in (self.total, self.dsp_sil, self.sil_dur, self.voice, self.cons, self.words, self.n_acc):
            a[i] = 0
        self.abs_acc[i] = 0
        self.in_initial[i], self.in_greeting[i], self.in_word[i] = True, False, True

    def disarm(self, idx: np.ndarray) -> None:
        self.armed[idx] = False

    def step(self, hop: int, sum_abs: np.ndarray, n_samples: int) -> list[tuple[int, Event]]:
        if not self.armed.any():
            return []
        a = self.armed
        self.abs_acc += np.where(a, sum_abs, 0)
        self.n_acc += np.where(a, n_samples, 0)
        frame = a & (self.n_acc >= n_samples * SUBS_PER_FRAME)
        if not frame.any():
            return []
        p = self.p
        mean_abs = self.abs_acc / np.maximum(self.n_acc, 1)
        self.abs_acc[frame] = 0
        self.n_acc[frame] = 0
        F = FRAME_MS
        status = np.full(self.n, "", dtype=object)
        cause = np.full(self.n, "", dtype=object)
        undecided = frame.copy()

        def decide(mask: np.ndarray, st: str, fmt) -> None:
            nonlocal undecided
            m = mask & undecided
            for i in np.nonzero(m)[0]:
                status[i], cause[i] = st, fmt(i)
            undecided = undecided & ~m

        self.total += np.where(frame, F, 0)
        decide(self.total >= p["total_analysis_time"], NOTSURE, lambda i: f"TOOLONG-{self.total[i]}")
        silent = undecided & (mean_abs < p["silence_threshold"])
        voiced = undecided & ~silent
        # silence branch
        self.dsp_sil = np.where(silent, self.dsp_sil + F, np.where(voiced, 0, self.dsp_sil))
        self.sil_dur = np.where(silent, self.dsp_sil, self.sil_dur)
        to_sil = silent & (self.sil_dur >= p["between_words_silence"])
        self.in_word &= ~to_sil
        self.cons = np.where(to_sil, 0, self.cons)
        decide(silent & self.in_initial & (self.sil_dur >= p["initial_silence"]), MACHINE,
               lambda i: f"INITIALSILENCE-{self.sil_dur[i]}-{p['initial_silence'][i]}")
        decide(silent & self.in_greeting & (self.sil_dur >= p["after_greeting_silence"]), HUMAN,
               lambda i: f"HUMAN-{self.sil_dur[i]}-{p['after_greeting_silence'][i]}")
        # voice branch
        self.cons = np.where(voiced, self.cons + F, self.cons)
        self.voice = np.where(voiced, self.voice + F, self.voice)
        new_word = voiced & (self.cons >= p["min_word_length"]) & ~self.in_word
        self.words += new_word
        self.in_word |= new_word
        decide(voiced & (self.cons >= p["maximum_word_length"]), MACHINE,
               lambda i: f"MAXWORDLENGTH-{self.cons[i]}")
        decide(voiced & (self.words >= p["maximum_number_of_words"]), MACHINE,
               lambda i: f"MAXWORDS-{self.words[i]}-{p['maximum_number_of_words'][i]}")
        decide(voiced & self.in_greeting & (self.voice >= p["greeting"]), MACHINE,
               lambda i: f"LONGGREETING-{self.voice[i]}-{p['greeting'][i]}")
        v = voiced & undecided
        self.sil_dur = np.where(v & (self.voice >= p["min_word_length"]), 0, self.sil_dur)
        g = v & (self.cons >= p["min_word_length"]) & ~self.in_greeting
        self.in_initial &= ~g
        self.in_greeting |= g
        done = frame & ~undecided
        out = []
        for i in np.nonzero(done)[0]:
            self.armed[i] = False
            t0 = (self.armed_at[i] - self.c0[i]) * SUB_BLOCK_S
            out.append((int(i), Event(AMD, round(t0, 3), round((hop + 1 - self.armed_at[i]) * SUB_BLOCK_S, 3),
                                      {"status": status[i], "cause": cause[i], "words": int(self.words[i]),
                                       "voice_ms": int(self.voice[i]), "total_ms": int(self.total[i])})))
        return out

    def flush(self, idx: np.ndarray, hop: int) -> list[tuple[int, Event]]:
        """Stream ended while analysing: app_amd's HANGUP status."""
        out = []
        for i in idx:
            if self.armed[i]:
                self.armed[i] = False
                t0 = (self.armed_at[i] - self.c0[i]) * SUB_BLOCK_S
                out.append((int(i), Event(AMD, round(t0, 3), round((hop - self.armed_at[i]) * SUB_BLOCK_S, 3),
                                          {"status": "HANGUP", "cause": "", "words": int(self.words[i]),
                                           "voice_ms": int(self.voice[i]), "total_ms": int(self.total[i])})))
        return out
