"""Voice activity, silence type and the "no speech after a prompt" timer.

Energy against an adaptive noise floor (fast down, slow up) on 20 ms windows
with a 5 ms hop; frames explained by a detected tone are labelled "tone", so
DTMF or ringback never count as speech.  Digital silence (samples all within
+-`digital_max`) is told apart from background noise, which matters for the
presence gate: a live line hisses, a dead RTP stream or a muted leg does not.
Hangover (default 500 ms, not TALK_DETECT's 2.5 s) bridges pauses inside an
utterance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .events import NO_SPEECH, SILENCE, SPEECH, SPEECH_START, Event
from .goertzel import SUB_BLOCK_S, SlidingBins
from .segments import SegmentTracker

NOISE, VOICE, DIGITAL, TONE = 0, 1, 2, 3
FULL_SCALE_POWER = 32768.0 ** 2 / 2  # full-scale sine = 0 dBFS


def power_dbfs(p: float) -> float:
    return round(float(10 * np.log10(max(p, 1e-3) / FULL_SCALE_POWER)), 1)


@dataclass
class VADConfig:
    speech_snr_db: float = 9.0         # above the noise floor
    min_speech_dbfs: float = -50.0     # absolute floor for speech
    floor_rise_db_per_s: float = 1.5   # how fast the noise floor may creep up
    onset_s: float = 0.03              # voice this long starts speech
    hangover_s: float = 0.50           # non-speech this long ends it
    min_speech_s: float = 0.08         # shorter bursts are not reported as utterances
    digital_max: int = 2               # |sample| <= this over a window = digital silence
    min_silence_report_s: float = 1.0  # report silence runs at least this long


class VADBank:
    def __init__(self, n: int, bins: SlidingBins, cfg: VADConfig, c0: np.ndarray):
        self.n, self.b, self.cfg, self.c0 = n, bins, cfg, c0
        self.m = bins.windows["w20"].n_sub
        self.win_len = self.m * bins.sub_len
        h = lambda s: max(1, int(round(s / SUB_BLOCK_S)))  # noqa: E731
        self.hang = h(cfg.hangover_s)
        self.tracker = SegmentTracker(n, 4, [self.hang, h(cfg.onset_s), self.hang, 4])
        self.floor = np.full(n, np.inf)
        self.rise = 10 ** (cfg.floor_rise_db_per_s * SUB_BLOCK_S / 10)
        self.k_snr = 10 ** (cfg.speech_snr_db / 10)
        self.abs_min = FULL_SCALE_POWER * 10 ** (cfg.min_speech_dbfs / 10)
        self.peaks = np.zeros((self.m, n), np.int32)
        self.sum_p = np.zeros(n)
        self.n_p = np.zeros(n)
        self.deadline = np.full(n, np.iinfo(np.int64).max, np.int64)
        self.armed_at = np.zeros(n, np.int64)
        self.label = np.zeros(n, np.int64)

    def reset_streams(self, idx: np.ndarray, hop: int) -> None:
        self.tracker.reset_streams(idx, hop)
        self.floor[idx] = np.inf
        self.peaks[:, idx] = 0
        self.sum_p[idx] = 0
        self.n_p[idx] = 0
        self.deadline[idx] = np.iinfo(np.int64).max

    def t(self, i: int, hop: float) -> float:
        return (hop - self.c0[i]) * SUB_BLOCK_S

    def expect_speech(self, i: int, within_s: float, hop: int) -> None:
        self.armed_at[i] = hop
        self.deadline[i] = hop + int(round(within_s / SUB_BLOCK_S))

    def step(self, hop: int, peak: np.ndarray, tone: np.ndarray) -> list[tuple[int, Event]]:
        cfg = self.cfg
        self.peaks[hop % self.m] = peak
        p = self.b.E["w20"].astype(np.float64) / self.win_len
        full = hop - self.c0 >= self.m - 1  # a stream's first windows are only partly filled
        self.floor = np.where(full, np.minimum(self.floor * self.rise, np.maximum(p, 1.0)), self.floor)
        digital = self.peaks.max(axis=0) <= cfg.digital_max
        voice = full & (p > self.floor * self.k_snr) & (p > self.abs_min)
        lab = np.where(digital, DIGITAL, np.where(tone, TONE, np.where(voice, VOICE, NOISE)))
        self.label = lab
        same = lab == self.tracker.cur
        self.sum_p += np.where(same, p, 0)
        self.n_p += same
        out: list[tuple[int, Event]] = []
        tr = self.tracker.step(lab, hop)
        if tr is not None:
            for i, old, s0, new, s1 in zip(tr.idx, tr.old, tr.old_start, tr.new, tr.new_start):
                out.extend(self._transition(int(i), int(old), int(s0), int(new), int(s1)))
        armed = self.deadline != np.iinfo(np.int64).max
        if armed.any():
            heard = armed & (self.tracker.cur == VOICE)
            expired = armed & ~heard & (hop >= self.deadline)
            for i in np.nonzero(expired)[0]:
                t0 = self.t(i, self.armed_at[i])
                out.append((int(i), Event(NO_SPEECH, round(t0, 3),
                                          round((self.deadline[i] - self.armed_at[i]) * SUB_BLOCK_S, 3),
                                          {"within_s": round((self.deadline[i] - self.armed_at[i]) * SUB_BLOCK_S, 3)})))
            self.deadline[heard | expired] = np.iinfo(np.int64).max
        return out

    def _transition(self, i: int, old: int, s0: int, new: int, s1: int) -> list[tuple[int, Event]]:
        cfg = self.cfg
        out = []
        level = power_dbfs(self.sum_p[i] / max(self.n_p[i], 1))
        self.sum_p[i] = 0
        self.n_p[i] = 0
        t0 = self.t(i, s0 - self.m + 1) if old == VOICE else self.t(i, s0)
        t1 = self.t(i, s1)
        dur = t1 - t0
        if old == VOICE and dur >= cfg.min_speech_s:
            out.append((i, Event(SPEECH, round(t0, 3), round(dur, 3), {"level_dbfs": level})))
        elif old in (NOISE, DIGITAL) and dur >= cfg.min_silence_report_s:
            out.append((i, Event(SILENCE, round(t0, 3), round(dur, 3),
                                 {"digital": old == DIGITAL, "level_dbfs": level})))
        if new == VOICE:
            ts = self.t(i, s1 - self.m + 1)
            out.append((i, Event(SPEECH_START, round(max(ts, 0.0), 3), 0.0, {})))
        return out

    def flush(self, idx: np.ndarray, hop: int) -> list[tuple[int, Event]]:
        tr = self.tracker.flush(idx, hop)
        out = []
        for i, old, s0, s1 in zip(tr.idx, tr.old, tr.old_start, tr.new_start):
            out.extend(self._transition(int(i), int(old), int(s0), -1, int(s1)))
        return out
