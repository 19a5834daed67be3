"""Fax, data-modem and North-American call-progress tones, vectorised over streams.

Three families, each a per-hop label per stream fed to a SegmentTracker; the
cadence rules then run only on segment transitions (sparse, per stream):

* fax/modem (20 ms windows, level corrected for frequency offset so the wide
  T.30 tolerance of CNG, 1100 +- 38 Hz, still reads full level):
  CNG 1100 Hz bursts, 2100 Hz answer tone (plain ANS/CED, ANS with phase
  reversals every 450 ms, ANSam with 15 Hz AM), Bell 103/212A 2225 Hz answer,
  V.21 channel-2 (1650/1850 Hz FSK) preamble.
* call progress (50 ms windows for the 40 Hz spaced pairs): dial 350+440,
  ringback 440+480 (2 s / 4 s), busy 480+620 (0.5 / 0.5 s), reorder (0.25 / 0.25 s).
* SIT: three contiguous single-frequency segments, classified by frequency
  (low/high) and length (short 276 ms / long 380 ms) into the Telcordia codes.

A window counts only if its 5 ms sub-block energies are steady (min >= 1/4 of
mean), so runs cover windows fully inside a tone and durations are exact to
a hop rather than smeared by the window length.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .events import (ANSWER_TONE, BUSY, DIAL_TONE, FAX_CNG, REORDER, RINGBACK, SIT,
                     V21_PREAMBLE, Event)
from .goertzel import SUB_BLOCK_S, SlidingBins, dirichlet_gain
from .segments import SegmentTracker, Transitions

FAX_FREQS = (1100.0, 2100.0, 2225.0, 1650.0, 1850.0)
CP_FREQS = (350.0, 440.0, 480.0, 620.0)
SIT_FREQS = (913.8, 985.2, 1370.6, 1428.5, 1776.7)

# (seg1 Hz, seg1 long?, seg2 Hz, seg2 long?) -> (code, meaning); seg3 is 1776.7 Hz.
SIT_CODES = {
    (913.8, False, 1370.6, False): ("IC", "intercept"),
    (985.2, True, 1370.6, False): ("VC", "vacant code"),
    (913.8, False, 1428.5, True): ("RO'", "reorder (intra-LATA)"),
    (985.2, False, 1370.6, True): ("RO''", "reorder (inter-LATA)"),
    (913.8, True, 1370.6, True): ("NC'", "no circuit (intra-LATA)"),
    (985.2, True, 1428.5, True): ("NC''", "no circuit (inter-LATA)"),
    (985.2, False, 1428.5, False): ("IO", "ineffective other"),
}


@dataclass
class ToneConfig:
    min_tone_dbfs: float = -45.0
    tone_share: float = 0.70          # tone energy / window energy
    steady_ratio: float = 0.25        # min 5 ms sub-block energy / mean in the window
    steady_half_ratio: float = 0.70   # min half-window energy / mean half (50 ms windows)
    cng_tol_hz: float = 45.0          # T.30: 1100 +- 38 Hz
    ans_tol_hz: float = 20.0          # V.25: 2100 +- 15 Hz
    bell_tol_hz: float = 25.0
    sit_tol_pct: float = 1.5
    v21_share: float = 0.70
    cng_burst_s: tuple[float, float] = (0.35, 0.90)
    answer_min_s: float = 0.50        # report an answer tone that lasted at least this
    answer_confirm_s: float = 1.00    # ... or as soon as it has lasted this (ongoing)
    ansam_min_depth: float = 0.08     # 15 Hz AM depth (ANSam is 0.2)
    v21_confirm_s: float = 0.30
    v21_flag_ratio: tuple[float, float] = (1.5, 12.0)  # mark/space energy for HDLC flags
    busy_s: tuple[float, float] = (0.40, 0.65)
    reorder_s: tuple[float, float] = (0.18, 0.33)
    ring_on_s: tuple[float, float] = (0.80, 2.60)
    dial_confirm_s: float = 1.00
    sit_long_s: float = 0.33          # short 276 ms vs long 380 ms
    sit_max_gap_s: float = 0.08


class _Clock:
    """Global hop -> per-stream seconds."""

    def __init__(self, c0: np.ndarray):
        self.c0 = c0  # shared array owned by the bank

    def t(self, i: int, hop: float) -> float:
        return (hop - self.c0[i]) * SUB_BLOCK_S


def _steady(b: SlidingBins, name: str, ratio: float, halves: bool = False) -> np.ndarray:
    """Window fully inside a steady tone: every 5 ms sub-block (or, for beating
    tone pairs, each half window) holds at least `ratio` of its fair share."""
    m = b.windows[name].n_sub
    if halves:
        return b.Ehalf[name] * 2 >= ratio * b.E[name]
    return b.Emin[name] * m >= ratio * b.E[name]


@dataclass
class _Hist:
    """Per-stream cadence memory (only touched on transitions)."""

    cng: list[float] = field(default_factory=list)
    cp_prev: tuple[int, float, float] | None = None  # (label, start, dur) of last on-period
    cp_cycles: int = 0
    cp_reported: str | None = None
    cp_first: float = 0.0
    rings: int = 0
    sit: list[tuple[int, float, float]] = field(default_factory=list)
    emitted: bool = False


class ToneBank:
    """All tone families for N streams.  `step` returns (stream, Event)."""

    def __init__(self, n: int, bins: SlidingBins, fax_cols: slice, cp_cols: slice,
                 sit_cols: slice, cfg: ToneConfig, c0: np.ndarray):
        self.n, self.b, self.cfg = n, bins, cfg
        self.fax_cols, self.cp_cols, self.sit_cols = fax_cols, cp_cols, sit_cols
        self.clock = _Clock(c0)
        self.m20 = bins.windows["w20"].n_sub
        self.m50 = bins.windows["w50"].n_sub
        amp = 32768.0 * 10 ** (cfg.min_tone_dbfs / 20)
        self.min_e20 = amp * amp / 2 * self.m20 * bins.sub_len
        self.min_e50 = amp * amp / 2 * self.m50 * bins.sub_len
        h = lambda s: max(1, int(round(s / SUB_BLOCK_S)))  # noqa: E731
        # fax labels: 0 none, 1 CNG, 2 ANS 2100, 3 Bell 2225, 4 V.21
        self.fax = SegmentTracker(n, 5, [6, 4, 4, 4, 4])
        self.cp = SegmentTracker(n, 4, [5, 3, 3, 3])   # 0, 1 dial, 2 ringback, 3 busy/reorder
        self.sit = SegmentTracker(n, 6, [6, 3, 3, 3, 3, 3])  # bridge drop-outs in noise
        self.confirm = {2: h(cfg.answer_confirm_s), 3: h(cfg.answer_confirm_s), 4: h(cfg.v21_confirm_s)}
        self.dial_confirm = h(cfg.dial_confirm_s)
        self.hist = [_Hist() for _ in range(n)]
        self.env = np.zeros((128, n), np.float32)   # 2100 Hz sub-block magnitudes (ANSam)
        self.rev_count = np.zeros(n, np.int64)
        self.last_rev = np.full(n, -10**9, np.int64)
        self.mark = np.zeros(n)
        self.space = np.zeros(n)
        self.tone_now = np.zeros(n, bool)

    def reset_streams(self, idx: np.ndarray, hop: int) -> None:
        for t in (self.fax, self.cp, self.sit):
            t.reset_streams(idx, hop)
        self.env[:, idx] = 0
        self.rev_count[idx] = 0
        self.mark[idx] = 0
        self.space[idx] = 0
        for i in idx:
            self.hist[int(i)] = _Hist()

    # ---- per hop -------------------------------------------------------------
    def step(self, hop: int) -> list[tuple[int, Event]]:
        cfg, b = self.cfg, self.b
        out: list[tuple[int, Event]] = []
        # fax / modem family on the 20 ms window
        fc = self.fax_cols
        E = b.E["w20"].astype(np.float64) + 1e-9
        steady = _steady(b, "w20", cfg.steady_ratio)
        single_cols = slice(fc.start, fc.start + 3)
        raw = b.tone_energy("w20", single_cols)
        # gate: a 38 Hz-off CNG keeps only ~8 % of its energy in the bin before correction
        cand = np.nonzero(steady & (raw.max(axis=1) >= 0.06 * E))[0]
        single = np.zeros((self.n, 3), bool)
        off2100 = np.zeros(self.n)
        if len(cand):
            off = b.offset_rows("w20", cand, single_cols)
            g = np.maximum(dirichlet_gain(off, self.m20 * b.sub_len, b.rate), 0.3)
            p = raw[cand] / (g * g)
            tol = np.array([cfg.cng_tol_hz, cfg.ans_tol_hz, cfg.bell_tol_hz])
            single[cand] = ((p >= self.min_e20) & (p >= cfg.tone_share * E[cand, None])
                            & (np.abs(off) <= tol))
            off2100[cand] = off[:, 1]
        # V.21 FSK: incoherent sum of the 5 ms sub-block bins (1650 and 1850 Hz are
        # exactly one 200 Hz sub-block bin apart), since the coherent 20 ms bin
        # is broken up by the phase jumps of the keying.
        ms = self._fsk_energy()
        v21 = steady & (ms[:, 0] + ms[:, 1] >= cfg.v21_share * E) & (ms[:, 0] + ms[:, 1] >= self.min_e20)
        lab = np.zeros(self.n, np.int64)
        for k in (2, 1, 0):
            lab = np.where(single[:, k], k + 1, lab)
        lab = np.where((lab == 0) & v21, 4, lab)
        self.mark += np.where(lab == 4, ms[:, 0], 0)
        self.space += np.where(lab == 4, ms[:, 1], 0)
        self._track_2100(hop, off2100, lab == 2)
        tr = self.fax.step(lab, hop)
        if tr is not None:
            out.extend(self._fax_transitions(tr))
        cur = self.fax.cur
        run = hop - self.fax.cur_start + 1
        for label, n_conf in self.confirm.items():
            hit = (cur == label) & (run == n_conf)
            for i in np.nonzero(hit)[0]:
                ev = self._fax_event(int(i), label, int(self.fax.cur_start[i]), hop + 1, ongoing=True)
                if ev is not None:
                    self.hist[i].emitted = True
                    out.append((int(i), ev))
        # call progress on the 50 ms window
        cc = self.cp_cols
        q = b.tone_energy("w50", cc)
        E5 = b.E["w50"].astype(np.float64) + 1e-9
        steady5 = _steady(b, "w50", cfg.steady_half_ratio, halves=True)
        lab_cp = np.zeros(self.n, np.int64)
        best = np.zeros(self.n)
        for label, (a, c) in ((1, (0, 1)), (2, (1, 2)), (3, (2, 3))):
            pa, pc = q[:, a], q[:, c]
            s = pa + pc
            good = (steady5 & (pa >= self.min_e50) & (pc >= self.min_e50) & (s >= cfg.tone_share * E5)
                    & (pa <= 10 * pc) & (pc <= 10 * pa) & (s > best))
            lab_cp = np.where(good, label, lab_cp)
            best = np.where(good, s, best)
        tr = self.cp.step(lab_cp, hop)
        if tr is not None:
            out.extend(self._cp_transitions(tr))
        dial = (self.cp.cur == 1) & (hop - self.cp.cur_start + 1 == self.dial_confirm)
        for i in np.nonzero(dial)[0]:
            t0 = self.clock.t(i, self.cp.cur_start[i] - self.m50 + 1)
            out.append((int(i), Event(DIAL_TONE, round(t0, 3), round(self.clock.t(i, hop + 1) - t0, 3),
                                      {"ongoing": True})))
        # SIT on the 50 ms window
        sc = self.sit_cols
        steady_sub = _steady(b, "w50", cfg.steady_ratio)  # single tones: per sub-block, exact edges
        raw = b.tone_energy("w50", sc)
        cand = np.nonzero(steady_sub & (raw.max(axis=1) >= 0.4 * cfg.tone_share * E5))[0]
        lab_sit = np.zeros(self.n, np.int64)
        if len(cand):
            offs = b.offset_rows("w50", cand, sc)
            g = np.maximum(dirichlet_gain(offs, self.m50 * b.sub_len, b.rate), 0.3)
            qs = raw[cand] / (g * g)
            f = np.asarray(SIT_FREQS)
            oks = ((qs >= self.min_e50) & (qs >= cfg.tone_share * E5[cand, None])
                   & (np.abs(offs) <= cfg.sit_tol_pct / 100 * f))
            lab_sit[cand] = np.where(oks.any(1), np.where(oks, qs, -1).argmax(1) + 1, 0)
        tr = self.sit.step(lab_sit, hop)
        if tr is not None:
            out.extend(self._sit_transitions(tr))
        self.tone_now = (lab != 0) | (lab_cp != 0) | (lab_sit != 0)
        return out

    def _fsk_energy(self) -> np.ndarray:
        """(N, 2) energies at 1650/1850 Hz summed over the 20 ms window's sub-blocks."""
        b = self.b
        c = self.fax_cols.start + 3
        idx = [(b.count - 1 - k) % b.depth for k in range(self.m20)]
        y = b.ring[idx][:, :, c:c + 2]
        return 2.0 * (np.abs(y) ** 2).sum(axis=0).astype(np.float64) / b.sub_len

    def _track_2100(self, hop: int, off2100: np.ndarray, in_ans: np.ndarray) -> None:
        """Sub-block 2100 Hz envelope (for ANSam) and phase-reversal counting."""
        b = self.b
        col = self.fax_cols.start + 1
        d = b.depth
        y0 = b.ring[(b.count - 1) % d][:, col]
        y2 = b.ring[(b.count - 3) % d][:, col]
        e0 = b.ering[(b.count - 1) % d]
        e2 = b.ering[(b.count - 3) % d]
        L = b.sub_len
        mag0 = np.abs(y0)
        self.env[hop % self.env.shape[0]] = mag0
        strong = (2 * mag0 ** 2 / L >= 0.5 * e0) & (2 * np.abs(y2) ** 2 / L >= 0.5 * e2)
        drift = 2 * np.pi * off2100 * 2 * SUB_BLOCK_S
        resid = np.angle(y0 * np.conj(y2) * np.exp(-1j * drift))
        cand = self.fax.cur == 2
        rev = cand & strong & (np.abs(resid) > 2 * np.pi / 3) & (hop - self.last_rev > 20)
        if rev.any():
            self.rev_count += rev
            self.last_rev = np.where(rev, hop, self.last_rev)

    # ---- sparse, per-stream logic ---------------------------------------------
    def _fax_transitions(self, tr: Transitions) -> list[tuple[int, Event]]:
        out = []
        for i, old, s0, new, s1 in zip(tr.idx, tr.old, tr.old_start, tr.new, tr.new_start):
            i = int(i)
            h = self.hist[i]
            if old != 0:
                ev = None
                if not h.emitted:
                    ev = self._fax_event(i, int(old), int(s0), int(s1), ongoing=False)
                if ev is not None:
                    out.append((i, ev))
            if new != 0:  # new run: reset run accumulators
                h.emitted = False
                self.rev_count[i] = 0
                self.mark[i] = 0
                self.space[i] = 0
        return out

    def _fax_event(self, i: int, label: int, s0: int, s1: int, ongoing: bool) -> Event | None:
        cfg, h = self.cfg, self.hist[i]
        t0 = self.clock.t(i, s0 - self.m20 + 1)
        dur = (s1 - s0 + self.m20 - 1) * SUB_BLOCK_S
        if label == 1:
            if not (cfg.cng_burst_s[0] <= dur <= cfg.cng_burst_s[1]):
                return None
            period = round(t0 - h.cng[-1], 3) if h.cng else None
            h.cng.append(t0)
            return Event(FAX_CNG, round(t0, 3), round(dur, 3),
                         {"freq_hz": 1100, "burst": len(h.cng), "period_s": period})
        if label in (2, 3):
            if dur < cfg.answer_min_s:
                return None
            if label == 3:
                return Event(ANSWER_TONE, round(t0, 3), round(dur, 3),
                             {"freq_hz": 2225, "variant": "bell", "am_depth": None,
                              "reversals": 0, "ongoing": ongoing})
            n_env = min(s1 - s0, self.env.shape[0])
            idx = np.arange(s1 - n_env, s1) % self.env.shape[0]
            env = self.env[idx, i].astype(np.float64)
            t = np.arange(n_env) * SUB_BLOCK_S
            w = np.hanning(n_env)
            ac = (env - env.mean()) * w
            depth = float(2 * np.abs(np.sum(ac * np.exp(-2j * np.pi * 15 * t))) / max((env * w).sum(), 1e-9))
            am = depth >= cfg.ansam_min_depth
            rev = int(self.rev_count[i])
            variant = ("ansam" if am else "ans") + ("_pr" if rev else "")
            return Event(ANSWER_TONE, round(t0, 3), round(dur, 3),
                         {"freq_hz": 2100, "variant": variant, "am_depth": round(depth, 3),
                          "reversals": rev, "ongoing": ongoing})
        if label == 4:
            if dur < cfg.v21_confirm_s:
                return None
            ratio = float(self.mark[i] / max(self.space[i], 1e-9))
            if not (cfg.v21_flag_ratio[0] <= ratio <= cfg.v21_flag_ratio[1]):
                return None
            return Event(V21_PREAMBLE, round(t0, 3), round(dur, 3),
                         {"mark_space_ratio": round(ratio, 2), "ongoing": ongoing})
        return None

    def _cp_transitions(self, tr: Transitions) -> list[tuple[int, Event]]:
        cfg = self.cfg
        out = []
        for i, old, s0, new, s1 in zip(tr.idx, tr.old, tr.old_start, tr.new, tr.new_start):
            i, old = int(i), int(old)
            if old == 0:
                continue
            h = self.hist[i]
            t0 = self.clock.t(i, s0 - self.m50 + 1)
            dur = (s1 - s0 + self.m50 - 1) * SUB_BLOCK_S
            if old == 2 and cfg.ring_on_s[0] <= dur <= cfg.ring_on_s[1]:
                h.rings += 1
                out.append((i, Event(RINGBACK, round(t0, 3), round(dur, 3), {"ring": h.rings})))
            if old == 3:
                kind = None
                if h.cp_prev is not None:
                    _, ps, pd = h.cp_prev
                    off = t0 - (ps + pd)
                    for k, (lo, hi) in ((BUSY, cfg.busy_s), (REORDER, cfg.reorder_s)):
                        if lo <= pd <= hi and lo <= off <= hi and lo <= dur <= hi:
                            kind = k
                if kind is None:
                    h.cp_cycles, h.cp_reported = 0, None
                    h.cp_prev = (3, t0, dur)
                    h.cp_first = t0
                    continue
                h.cp_cycles += 1
                h.cp_prev = (3, t0, dur)
                if h.cp_reported != kind:
                    h.cp_reported = kind
                    first = h.cp_first
                    out.append((i, Event(kind, round(first, 3), round(t0 + dur - first, 3),
                                         {"cycles": h.cp_cycles + 1, "on_s": round(float(dur), 3),
                                          "off_s": round(float(off), 3)})))
            else:
                h.cp_prev, h.cp_cycles, h.cp_reported = None, 0, None
        return out

    def _sit_transitions(self, tr: Transitions) -> list[tuple[int, Event]]:
        cfg = self.cfg
        out = []
        for i, old, s0, s1 in zip(tr.idx, tr.old, tr.old_start, tr.new_start):
            i, old = int(i), int(old)
            if old == 0:
                continue
            h = self.hist[i]
            t0 = self.clock.t(i, s0 - self.m50 + 1)
            dur = (s1 - s0 + self.m50 - 1) * SUB_BLOCK_S
            if dur < 0.18:
                continue
            h.sit = (h.sit + [(old - 1, t0, dur)])[-3:]
            if old - 1 != 4 or len(h.sit) < 3:
                continue
            (a, ta, da), (bb, tb, db), (_, tc, dc) = h.sit
            if (a in (0, 1) and bb in (2, 3) and tb - (ta + da) <= cfg.sit_max_gap_s
                    and tc - (tb + db) <= cfg.sit_max_gap_s):
                key = (SIT_FREQS[a], da >= cfg.sit_long_s, SIT_FREQS[bb], db >= cfg.sit_long_s)
                code, name = SIT_CODES.get(key, ("?", "unassigned"))
                out.append((i, Event(SIT, round(ta, 3), round(tc + dc - ta, 3),
                                     {"code": code, "name": name,
                                      "segments": [(SIT_FREQS[a], round(da, 3)), (SIT_FREQS[bb], round(db, 3)),
                                                   (SIT_FREQS[4], round(dc, 3))]})))
                h.sit = []
        return out

    def flush(self, idx: np.ndarray, hop: int) -> list[tuple[int, Event]]:
        out = []
        out.extend(self._fax_transitions(self.fax.flush(idx, hop)))
        out.extend(self._cp_transitions(self.cp.flush(idx, hop)))
        out.extend(self._sit_transitions(self.sit.flush(idx, hop)))
        return out
