"""DTMF (all 16 digits) to ITU-T Q.24, vectorised over streams.

Per 5 ms hop, on a 20 ms window: strongest bin in each group, levels corrected
for the measured frequency offset, twist (8 dB normal / 4 dB reverse), share
of window energy held by the two tones (talk-off guard), dominance over the
other bins of each group.  Runs of the same digit are then judged as a whole:
duration (accept >= 40 ms, reject < ~20 ms) and mean frequency deviation from
the phase drift (accept 1.5 %, reject 3.5 %).  Per-digit gaps and cadence feed
a small per-stream analyser that flags machine-like dialling.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .events import DTMF, DTMF_MACHINE, Event
from .goertzel import SUB_BLOCK_S, SlidingBins, dirichlet_gain

LOW = (697.0, 770.0, 852.0, 941.0)
HIGH = (1209.0, 1336.0, 1477.0, 1633.0)
FREQS = LOW + HIGH
KEYS = "123A456B789C*0#D"
WINDOW = "w20"


@dataclass
class DTMFConfig:
    min_tone_dbfs: float = -42.0      # per tone; Q.24 asks for operation down to about -36 dBm0
    normal_twist_db: float = 8.0      # low group louder
    reverse_twist_db: float = 4.0     # high group louder
    twist_margin_db: float = 2.0      # measurement allowance on top of the Q.24 limits
    min_tone_share: float = 0.60      # both tones' share of window energy (talk-off guard)
    group_dominance_db: float = 6.0   # best bin over the runner-up in its group
    max_window_dev_pct: float = 4.0   # per-window deviation cut (noise allowance)
    max_dev_pct: float = 2.5          # run-mean deviation: between Q.24's 1.5 % accept and 3.5 % reject
    min_duration_s: float = 0.028     # between Q.24's 20 ms reject and 40 ms accept
    max_dropout_hops: int = 3         # bridge drop-outs up to 15 ms (a 40 ms pause still splits)
    max_chirp_hz_s: float = 700.0     # frequency drift limit: a DTMF tone is steady, a sweep is not
    sub_share: float = 0.5            # 5 ms sub-block counts as tone if the digit's bins hold this share
    # machine-like dialling
    machine_max_gap_s: float = 0.080
    machine_min_tone_s: float = 0.045
    machine_regular_cv: float = 0.05
    machine_min_digits: int = 4


def _dbfs(energy: np.ndarray, n: int) -> np.ndarray:
    amp = np.sqrt(np.maximum(2.0 * energy / n, 1e-12))
    return 20.0 * np.log10(amp / 32768.0)


class DTMFBank:
    """DTMF state for N streams; `step` returns finished, accepted digits."""

    def __init__(self, n: int, bins: SlidingBins, cols: slice, cfg: DTMFConfig):
        self.n, self.bins, self.cols, self.cfg = n, bins, cols, cfg
        self.win_len = bins.windows[WINDOW].n_sub * bins.sub_len
        amp = 32768.0 * 10 ** (cfg.min_tone_dbfs / 20)
        self.min_energy = amp * amp / 2 * self.win_len
        self.f = np.asarray(FREQS)
        self.cur = np.full(n, -1, np.int64)
        self.miss = np.zeros(n, np.int64)
        self.hit_now = np.zeros(n, bool)
        z = lambda dt=np.float64: np.zeros(n, dt)  # noqa: E731
        self.n_hits = z()
        self.sum_pl, self.sum_ph = z(), z()
        self.sum_dl, self.sum_dh = z(np.complex128), z(np.complex128)
        self.reg = np.zeros((7, n))  # sums for the frequency-vs-time regression
        self.first_sub = np.full(n, -1, np.int64)  # tone extent in 5 ms sub-blocks
        self.last_sub = np.full(n, -1, np.int64)
        self.min_sub_energy = amp * amp / 2 * bins.sub_len

    def reset_streams(self, idx: np.ndarray) -> None:
        self.cur[idx] = -1
        self.miss[idx] = 0
        for a in (self.n_hits, self.sum_pl,
                  self.sum_ph, self.sum_dl, self.sum_dh):
            a[idx] = 0
        self.first_sub[idx] = -1
        self.last_sub[idx] = -1
        self.reg[:, idx] = 0

    def step(self, hop: int) -> list[tuple]:
        """One hop for all streams.  Returns (stream, digit, first_sub_block, dur_s, info)."""
        cfg, b, c = self.cfg, self.bins, self.cols
        S = b.S[WINDOW][:, c]
        P = S.real ** 2 + S.imag ** 2
        il = P[:, :4].argmax(1)
        ih = P[:, 4:].argmax(1) + 4
        r = np.arange(self.n)
        scale = 2.0 / self.win_len
        E = b.E[WINDOW]
        # cheap gate: only windows whose two strongest bins could pass get the full test
        rl, rh = P[r, il] * scale, P[r, ih] * scale
        cand = (rl + rh >= 0.25 * cfg.min_tone_share * E) & (rl >= 0.2 * self.min_energy) & (rh >= 0.2 * self.min_energy)
        hit = np.zeros(self.n, bool)
        pl = np.zeros(self.n)
        ph = np.zeros(self.n)
        idx = np.nonzero(cand)[0]
        if len(idx):
            Sc, Spc, Pc = S[idx], b.S_prev[WINDOW][idx][:, c], P[idx]
            k_ = np.arange(len(idx))
            jl, jh = il[idx], ih[idx]
            sl, sh = Sc[k_, jl], Sc[k_, jh]
            k = 1.0 / (2 * np.pi * SUB_BLOCK_S)
            ol = np.angle(sl * np.conj(Spc[k_, jl])) * k
            oh = np.angle(sh * np.conj(Spc[k_, jh])) * k
            gl = np.maximum(dirichlet_gain(ol, self.win_len, b.rate), 0.3)
            gh = np.maximum(dirichlet_gain(oh, self.win_len, b.rate), 0.3)
            cl = Pc[k_, jl].astype(np.float64) * scale / (gl * gl)
            ch = Pc[k_, jh].astype(np.float64) * scale / (gh * gh)
            second_l = np.partition(Pc[:, :4], 2, axis=1)[:, 2]
            second_h = np.partition(Pc[:, 4:], 2, axis=1)[:, 2]
            dom = 10 ** (cfg.group_dominance_db / 10)
            tn = 10 ** ((cfg.normal_twist_db + cfg.twist_margin_db) / 10)
            tr = 10 ** ((cfg.reverse_twist_db + cfg.twist_margin_db) / 10)
            wdev = cfg.max_window_dev_pct / 100
            hc = ((cl >= self.min_energy) & (ch >= self.min_energy)
                  & (cl <= ch * tn) & (ch <= cl * tr)
                  & (cl + ch >= cfg.min_tone_share * E[idx])
                  & (Pc[k_, jl] >= dom * second_l) & (Pc[k_, jh] >= dom * second_h)
                  & (np.abs(ol) <= wdev * self.f[jl]) & (np.abs(oh) <= wdev * self.f[jh]))
            hit[idx] = hc
            pl[idx], ph[idx] = cl, ch
        digit = np.where(hit, (il * 4 + (ih - 4)), -1)
        self.hit_now = hit
        out: list[tuple] = []
        active = self.cur >= 0
        if not (hit.any() or active.any()):
            return out
        cont = hit & (digit == self.cur)
        self.miss = np.where(cont, 0, np.where(active, self.miss + 1, 0))
        ending = active & (self.miss > cfg.max_dropout_hops)
        if ending.any():
            out.extend(self._finish(np.nonzero(ending)[0]))
        start = hit & (self.cur < 0)
        if start.any():
            idx = np.nonzero(start)[0]
            self.cur[idx] = digit[idx]
            self.miss[idx] = 0
            self._look_back(idx)
        self._mark_sub(np.nonzero(self.cur >= 0)[0], b.count - 1)
        m = (hit & (digit == self.cur)).astype(np.float64)
        self.n_hits += m
        self.sum_pl += pl * m
        self.sum_ph += ph * m
        return out

    def _sub_pass(self, idx: np.ndarray, sub: int) -> np.ndarray:
        """Does sub-block `sub` of streams idx carry their current digit's two tones?"""
        b = self.bins
        slot = sub % b.depth
        d = self.cur[idx]
        y = b.ring[slot][idx]
        yl = y[np.arange(len(idx)), self.cols.start + d // 4]
        yh = y[np.arange(len(idx)), self.cols.start + 4 + d % 4]
        el = 2 * np.abs(yl).astype(np.float64) ** 2 / b.sub_len
        eh = 2 * np.abs(yh).astype(np.float64) ** 2 / b.sub_len
        e = b.ering[slot][idx].astype(np.float64)
        return (el + eh >= self.cfg.sub_share * e) & (el >= self.min_sub_energy) & (eh >= self.min_sub_energy)

    def _mark_sub(self, idx: np.ndarray, sub: int) -> None:
        """Extend the tone extent and accumulate sub-block phase steps (the run's
        frequency estimate covers every 5 ms of the tone, not only the windows
        that passed, so an off-frequency tone cannot slip through at its edges)."""
        if len(idx) == 0:
            return
        ok = self._sub_pass(idx, sub)
        j = idx[ok]
        if len(j) == 0:
            return
        b = self.bins
        d = self.cur[j]
        cl, ch = self.cols.start + d // 4, self.cols.start + 4 + d % 4
        y, yp = b.ring[sub % b.depth][j], b.ring[(sub - 1) % b.depth][j]
        k = np.arange(len(j))
        cont = self.last_sub[j] == sub - 1
        dl = np.where(cont, y[k, cl] * np.conj(yp[k, cl]), 0)
        dh = np.where(cont, y[k, ch] * np.conj(yp[k, ch]), 0)
        self.sum_dl[j] += dl
        self.sum_dh[j] += dh
        # least-squares slope of instantaneous frequency over time (chirp guard)
        w = cont.astype(np.float64)
        t = (sub - self.first_sub[j].clip(min=0)) * SUB_BLOCK_S * w
        kf = 1.0 / (2 * np.pi * SUB_BLOCK_S)
        fl, fh = np.angle(dl) * kf, np.angle(dh) * kf
        self.reg[:, j] += np.stack([w, t, t * t, w * fl, t * fl, w * fh, t * fh])
        self.first_sub[j] = np.where(self.first_sub[j] < 0, sub, self.first_sub[j])
        self.last_sub[j] = sub

    def _chirp(self, i: int) -> float:
        """Largest |df/dt| (Hz/s) of the two tones over the run; 0 if too short to tell."""
        n, t, tt, fl, tfl, fh, tfh = self.reg[:, i]
        den = n * tt - t * t
        if n < 3 or den <= 0:
            return 0.0
        return float(max(abs(n * tfl - t * fl), abs(n * tfh - t * fh)) / den)

    def _look_back(self, idx: np.ndarray) -> None:
        """A run starts when a whole window holds the tone: its onset is up to a window back."""
        m = self.bins.windows[WINDOW].n_sub
        for back in range(m - 1, 0, -1):
            self._mark_sub(idx, self.bins.count - 1 - back)

    def flush(self, idx: np.ndarray) -> list[tuple]:
        idx = np.asarray([i for i in idx if self.cur[i] >= 0], dtype=np.int64)
        return self._finish(idx) if len(idx) else []

    def _finish(self, idx: np.ndarray) -> list[tuple]:
        cfg = self.cfg
        out = []
        k = 1.0 / (2 * np.pi * SUB_BLOCK_S)
        for i in idx:
            d = int(self.cur[i])
            n_hits = self.n_hits[i]
            if n_hits >= 2:
                if self.first_sub[i] < 0:
                    dur = 0.0
                else:
                    dur = (self.last_sub[i] - self.first_sub[i] + 1) * SUB_BLOCK_S
                fl, fh = LOW[d // 4], HIGH[d % 4]
                dev_l = 100 * np.angle(self.sum_dl[i]) * k / fl
                dev_h = 100 * np.angle(self.sum_dh[i]) * k / fh
                chirp = self._chirp(i)
                if (dur >= cfg.min_duration_s and abs(dev_l) <= cfg.max_dev_pct and abs(dev_h) <= cfg.max_dev_pct
                        and chirp <= cfg.max_chirp_hz_s):
                    pl, ph = self.sum_pl[i] / n_hits, self.sum_ph[i] / n_hits
                    info = {
                        "level_dbfs": (round(float(_dbfs(pl, self.win_len)), 1),
                                       round(float(_dbfs(ph, self.win_len)), 1)),
                        "twist_db": round(float(10 * np.log10(pl / ph)), 1),
                        "dev_low_pct": round(float(dev_l), 2),
                        "dev_high_pct": round(float(dev_h), 2),
                        "chirp_hz_s": round(float(chirp)),
                    }
                    out.append((int(i), KEYS[d], int(self.first_sub[i]), float(dur), info))
            self.cur[i] = -1
            self.miss[i] = 0
            self.first_sub[i] = self.last_sub[i] = -1
            self.reg[:, i] = 0
            for a in (self.n_hits, self.sum_pl,
                      self.sum_ph, self.sum_dl, self.sum_dh):
                a[i] = 0
        return out


@dataclass
class DialAnalyzer:
    """Per-stream digit history: gaps and the machine-dialling verdict (patent C10)."""

    cfg: DTMFConfig
    digits: list[tuple[str, float, float]] = field(default_factory=list)  # (digit, start, dur)
    flagged: bool = False

    def add(self, digit: str, start: float, dur: float, info: dict) -> list[Event]:
        cfg = self.cfg
        gap = None
        if self.digits:
            _, ps, pd = self.digits[-1]
            gap = float(max(0.0, start - (ps + pd)))
        self.digits.append((digit, start, dur))
        reasons = self.reasons()
        ev = Event(DTMF, round(start, 3), round(dur, 3),
                   {"digit": digit, "gap_s": None if gap is None else round(gap, 3),
                    **info, "machine_like": bool(reasons), "reasons": reasons})
        out = [ev]
        if reasons and not self.flagged:
            self.flagged = True
            first = self.digits[0][1]
            out.append(Event(DTMF_MACHINE, round(first, 3), round(start + dur - first, 3),
                             {"reasons": reasons, "digits": "".join(d for d, _, _ in self.digits)}))
        return out

    def reasons(self) -> list[str]:
        cfg, ds = self.cfg, self.digits
        why = []
        if any(d in "ABCD" for d, _, _ in ds):
            why.append("abcd_digit")
        gaps = [max(0.0, s - (ps + pd)) for (_, ps, pd), (_, s, _) in zip(ds, ds[1:])]
        recent_gaps = gaps[-(cfg.machine_min_digits - 1):]
        if len(recent_gaps) >= 2 and np.median(recent_gaps) < cfg.machine_max_gap_s:
            why.append("short_gaps")
        durs = [d for _, _, d in ds[-cfg.machine_min_digits:]]
        if len(durs) >= 3 and np.median(durs) < cfg.machine_min_tone_s:
            why.append("short_tones")
        if len(ds) >= cfg.machine_min_digits:
            g = np.asarray(recent_gaps)
            d = np.asarray(durs)
            if (g.std() <= cfg.machine_regular_cv * max(g.mean(), 1e-3)
                    and d.std() <= cfg.machine_regular_cv * d.mean()):
                why.append("regular_timing")
        return why
