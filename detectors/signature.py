"""Announcement signatures: recognise a recorded announcement heard before.

Robocalls play one recording to everyone.  We fingerprint the opening seconds
of the caller's audio on calls marked spam; a later call whose opening matches
one of those fingerprints played the same recording and can be flagged or
rejected.  Two people (or two different recordings of the same words) never
match: the fingerprint encodes where the exact spectral peaks of *this*
recording sit in time and frequency, not what is being said.

Method: landmark (peak-pair) hashing, as in Wang's Shazam paper.

* Audio is brought to 8 kHz (whatever the input rate), leading silence is cut
  (first 30 ms run 10 dB over the noise floor), and `seconds` of audio from
  there are analysed: 64 ms Hann frames, 16 ms hop, 300-3400 Hz only.
* Peaks are local maxima of the log spectrogram over +-PEAK_DF bins and
  +-PEAK_DT frames; the strongest PEAKS_PER_S per second are kept.  A peak
  whose bin holds the same level PEAK_STEADY_DT frames before *and* after is a
  steady tone (ringback, dial tone, a modem carrier) and is dropped, so two
  unrelated calls that both start with ringback share nothing.
* Each peak (the anchor) is paired with up to FAN_OUT later peaks 1..DT_MAX
  frames on and 2..DF_MAX bins away; (f1, f2 - f1, dt) packs into a 21-bit
  hash kept with the anchor's frame time.  ~350 landmarks for 6 s: 6 bytes
  each, 2-3 KB serialised.

Why landmarks rather than Haitsma-Kalker's 32-bit band-energy-difference
sub-fingerprints:

* Time offset.  A landmark hash contains only time *differences*, so it is the
  same wherever the announcement starts; matching is voting on
  t_b - t_a over shared hashes, one histogram, any offset.  HK needs an
  alignment search (or an exact 32-bit sub-fingerprint hit, which codec
  noise rarely leaves intact) and a fixed frame grid.
* Things before the announcement.  Ringback, "hello?" or line noise only add
  landmarks that match nothing; they cost coverage, not correctness.  HK's
  bit error rate over the whole block counts them as errors.
* Codec and level.  Peak positions survive G.711, GSM 06.10 and AMR
  (waveform-matching or spectral-envelope coders keep the strong harmonics
  where they were), gain (local maxima are scale-free) and white noise at
  20 dB SNR (the strongest peaks stay on top).  Packet loss removes the peaks
  of the lost 20 ms and nothing else.
* Specificity.  Harmonic peaks at 15.6 Hz resolution encode this speaker's
  pitch contour and this take's timing; another voice or another take of the
  same text lands in other bins (measured below).
* Lookup.  Hashes go straight into an inverted index (`SignatureIndex`).

similarity(a, b) is the largest number of landmarks that agree on one offset
(+-1 frame, |offset| <= MAX_OFFSET_S), divided by the landmarks either side
has in the overlapping stretch (the smaller count, at least MIN_LANDMARKS), so
a 1.5 s late start costs nothing beyond the audio it cut off.

Measured (tests/unit/detectors/test_signature.py; see docs/detectors.md):
see MATCH_THRESHOLD below.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Hashable

import numpy as np

RATE = 8000
N_FFT = 512                 # 64 ms
HOP = 32                    # 4 ms
FRAME_S = HOP / RATE
F_LO, F_HI = 300.0, 3400.0
K_LO = int(np.ceil(F_LO * N_FFT / RATE))
K_HI = int(np.floor(F_HI * N_FFT / RATE))

PEAK_DF = 4                 # local maximum over +-4 bins (+-62 Hz)
PEAK_DT = 8                 # and +-8 frames (+-32 ms)
PEAK_RANGE_DB = 50.0        # ignore anything 50 dB under the loudest bin
PEAKS_PER_S = 24
PEAK_STEADY_DT = 40         # same bin +-160 ms within PEAK_STEADY_DB: a steady tone
PEAK_STEADY_DB = 4.0
FAN_OUT = 4
DT_MAX = 160                # pair targets up to 640 ms later
DF_MAX = 63                 # and up to +-984 Hz away
DF_MIN = 2

MAX_OFFSET_S = 2.5
F_Q = 1                     # frequencies are compared in F_Q-bin steps...
F_JITTER = 0                # ...and a query landmark also tries f +-F_JITTER bins
DT_Q = 4                    # dt is compared in 16 ms steps...
DT_JITTER = 2               # ...and a query landmark also tries dt +-2 frames (8 ms)
OFFSET_TOL = 2              # landmarks within +-2 frames (8 ms) of the best offset agree
MIN_LANDMARKS = 100         # denominator floor: short or near-silent openings cannot score high
ONSET_FRAME_S = 0.010
ONSET_SNR_DB = 10.0
ONSET_RUN = 3

MATCH_THRESHOLD = 0.25

_MAGIC = b"RPSG"
_VERSION = 1
_HEADER = struct.Struct("<4sBxHII")  # magic, version, n_frames, start_ms, count


@dataclass(frozen=True)
class Fingerprint:
    """Landmarks of one opening: hashes (uint32, sorted) and their anchor frame times (uint16).

    n_frames is the analysed length in 16 ms frames; start_s is where the
    analysed audio began in the input (leading silence skipped).
    """

    hashes: np.ndarray
    times: np.ndarray
    n_frames: int
    start_s: float = 0.0
    _h_sorted: np.ndarray = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def duration_s(self) -> float:
        return self.n_frames * FRAME_S

    def to_bytes(self) -> bytes:
        head = _HEADER.pack(_MAGIC, _VERSION, self.n_frames, int(round(self.start_s * 1000)), len(self.hashes))
        return head + self.hashes.astype("<u4").tobytes() + self.times.astype("<u2").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Fingerprint":
        magic, version, n_frames, start_ms, count = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise ValueError("not a ringpool announcement signature (or another version)")
        if len(data) != _HEADER.size + 6 * count:
            raise ValueError(f"signature length {len(data)} does not match its {count} landmarks")
        o = _HEADER.size
        h = np.frombuffer(data, "<u4", count, o).astype(np.uint32)
        t = np.frombuffer(data, "<u2", count, o + 4 * count).astype(np.uint16)
        return _make(h, t, n_frames, start_ms / 1000)


def _make(h: np.ndarray, t: np.ndarray, n_frames: int, start_s: float) -> Fingerprint:
    order = np.lexsort((t, h))
    return Fingerprint(np.ascontiguousarray(h[order], np.uint32), np.ascontiguousarray(t[order], np.uint16),
                       int(n_frames), float(start_s))


# ----------------------------------------------------------------------------------------------- audio

def _as_float(samples) -> np.ndarray:
    if isinstance(samples, (bytes, bytearray, memoryview)):
        samples = np.frombuffer(samples, np.int16)
    return np.asarray(samples, dtype=np.float64).ravel()


def _onset(x: np.ndarray, rate: int) -> int | None:
    """Sample index where the audio first rises ONSET_SNR_DB over the noise floor for 30 ms."""
    n = max(1, int(round(ONSET_FRAME_S * rate)))
    m = len(x) // n
    if m < ONSET_RUN:
        return None
    e = np.mean(x[: m * n].reshape(m, n) ** 2, axis=1)
    db = 10 * np.log10(e + 1.0)
    # absolute floor ~ -66 dBFS rms: below that is digital silence or hiss whatever the floor says
    thr = max(np.percentile(db, 10) + ONSET_SNR_DB, np.percentile(db, 99) - 45.0, 25.0)
    on = db > thr
    run = np.convolve(on, np.ones(ONSET_RUN, int), "valid") == ONSET_RUN
    idx = np.flatnonzero(run)
    if not len(idx):
        return None
    return max(0, int(idx[0]) - 2) * n


def _resample(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Band-limited resampling by FFT (the input is a few seconds, so this is cheap)."""
    if rate == to or not len(x):
        return x
    m = int(round(len(x) * to / rate))
    spec = np.fft.rfft(x)
    keep = min(len(spec), m // 2 + 1)
    out = np.zeros(m // 2 + 1, complex)
    out[:keep] = spec[:keep]
    return np.fft.irfft(out, m) * (m / len(x))


def _spectrogram(x: np.ndarray) -> np.ndarray:
    """Log power (dB), shape (frames, K_HI - K_LO + 1)."""
    if len(x) < N_FFT:
        x = np.concatenate([x, np.zeros(N_FFT - len(x))])
    fr = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]
    p = np.abs(np.fft.rfft(fr * np.hanning(N_FFT), axis=1)[:, K_LO:K_HI + 1]) ** 2
    return 10 * np.log10(p + 1e-12 * (p.max() + 1.0) + 1e-6)


def _maxfilt(s: np.ndarray, r: int, axis: int) -> np.ndarray:
    out = s.copy()
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    p = np.pad(s, pad, constant_values=-np.inf)
    n = s.shape[axis]
    for d in range(2 * r + 1):
        sl = [slice(None), slice(None)]
        sl[axis] = slice(d, d + n)
        np.maximum(out, p[tuple(sl)], out=out)
    return out


def _peaks(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frame, bin) of the kept spectral peaks, sorted by frame."""
    nt, nf = s.shape
    local = _maxfilt(_maxfilt(s, PEAK_DF, 1), PEAK_DT, 0)
    cand = (s >= local) & (s > s.max() - PEAK_RANGE_DB)
    # steady tones: the bin (+-1) is as loud PEAK_STEADY_DT frames before and after
    near = _maxfilt(s, 1, 1)
    d = PEAK_STEADY_DT
    if nt > 2 * d:
        steady = np.zeros_like(cand)
        steady[d:-d] = (near[:-2 * d] > s[d:-d] - PEAK_STEADY_DB) & (near[2 * d:] > s[d:-d] - PEAK_STEADY_DB)
        cand &= ~steady
    t, f = np.nonzero(cand)
    if not len(t):
        return t, f
    # keep a peak if it is among the PEAKS_PER_S strongest of the second centred on it: a
    # sliding rank, so which peaks survive does not depend on where the analysis started
    v = s[t, f]
    half = int(round(0.5 / FRAME_S))
    lo = np.searchsorted(t, t - half, "left")
    hi = np.searchsorted(t, t + half, "right")
    keep = np.zeros(len(t), bool)
    for c0 in range(0, len(t), 512):  # chunks bound the pairwise matrix
        c1 = min(len(t), c0 + 512)
        w0, w1 = lo[c0], hi[c1 - 1]
        idx = np.arange(w0, w1)
        inwin = (idx[None, :] >= lo[c0:c1, None]) & (idx[None, :] < hi[c0:c1, None])
        louder = v[None, w0:w1] > v[c0:c1, None]
        keep[c0:c1] = np.count_nonzero(inwin & louder, axis=1) < PEAKS_PER_S
    return t[keep], f[keep]


def _landmarks(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = len(t)
    if n < 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint16)
    look = min(n - 1, 4 * FAN_OUT * 4)
    j = np.arange(n)[:, None] + np.arange(1, look + 1)[None, :]
    valid = j < n
    j = np.minimum(j, n - 1)
    dt = t[j] - t[:, None]
    df = f[j] - f[:, None]
    valid &= (dt >= 1) & (dt <= DT_MAX) & (np.abs(df) >= DF_MIN) & (np.abs(df) <= DF_MAX)
    valid &= np.cumsum(valid, axis=1) <= FAN_OUT
    a, c = np.nonzero(valid)
    dt, df = dt[a, c], df[a, c]
    h = (f[a].astype(np.uint32) << 15) | ((df + 64).astype(np.uint32) << 8) | dt.astype(np.uint32)
    return h, t[a].astype(np.uint16)


def fingerprint(samples, rate: int, seconds: float = 6.0) -> Fingerprint:
    """Fingerprint the opening `seconds` of audio after any leading silence.

    samples: int16 or float samples in int16 units (or raw native-endian int16
    bytes), any rate.  Returns an empty Fingerprint for silence.
    """
    x = _as_float(samples)
    start = _onset(x, rate)
    if start is None:
        return _make(np.zeros(0, np.uint32), np.zeros(0, np.uint16), 0, 0.0)
    seg = x[start: start + int(round(seconds * rate))]
    seg = _resample(seg - seg.mean(), rate, RATE)
    s = _spectrogram(seg)
    h, tt = _landmarks(*_peaks(s))
    return _make(h, tt, max(1, (len(seg) - N_FFT) // HOP + 1), start / rate)


# -------------------------------------------------------------------------------------------- matching

def _pairs(qh: np.ndarray, ref_keys: np.ndarray, ref_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (query index, posting index) with equal hashes; ref is CSR (unique keys, starts)."""
    pos = np.searchsorted(ref_keys, qh)
    pos_c = np.minimum(pos, len(ref_keys) - 1)
    hit = ref_keys[pos_c] == qh
    qi = np.flatnonzero(hit)
    lo = ref_start[pos_c[qi]]
    cnt = ref_start[pos_c[qi] + 1] - lo
    total = int(cnt.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rep = np.repeat(np.arange(len(qi)), cnt)
    first = np.cumsum(cnt) - cnt
    post = lo[rep] + (np.arange(total) - first[rep])
    return qi[rep], post


def _csr(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys, start = np.unique(h, return_index=True)
    return keys, np.append(start, len(h)).astype(np.int64)


def _score(a: Fingerprint, b: Fingerprint, ia: np.ndarray, ib: np.ndarray) -> float:
    """Score of a against b given the index pairs of equal hashes."""
    if not len(ia):
        return 0.0
    max_off = int(round(MAX_OFFSET_S / FRAME_S))
    off = b.times[ib].astype(np.int64) - a.times[ia].astype(np.int64)
    ok = np.abs(off) <= max_off
    if not ok.any():
        return 0.0
    ia, ib, off = ia[ok], ib[ok], off[ok]
    hist = np.bincount(off + max_off, minlength=2 * max_off + 1)
    d = int(np.argmax(np.convolve(hist, np.ones(2 * OFFSET_TOL + 1), "same"))) - max_off
    sel = np.abs(off - d) <= OFFSET_TOL
    matches = min(len(np.unique(ia[sel])), len(np.unique(ib[sel])))
    ta, tb = a.times.astype(np.int64), b.times.astype(np.int64)
    na = np.count_nonzero((ta + d >= 0) & (ta + d < b.n_frames))
    nb = np.count_nonzero((tb - d >= 0) & (tb - d < a.n_frames))
    return min(1.0, matches / max(min(na, nb), MIN_LANDMARKS))


def _fields(h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h = h.astype(np.int64)
    f1 = h >> 15
    return f1, f1 + ((h >> 8) & 0x7F) - 64, h & 0xFF


def _pack(f1, f2, dt) -> np.ndarray:
    return ((np.clip(f1, 0, 255) // F_Q) << 14) | ((np.clip(f2, 0, 255) // F_Q) << 6) | (np.clip(dt, 0, 255) // DT_Q)


def _key(h: np.ndarray) -> np.ndarray:
    """Stored side: the landmark's key (frequencies in F_Q bins, dt in DT_Q frames)."""
    return _pack(*_fields(h))


def _expand(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Query side: the keys of each landmark with its frequencies moved by up to F_JITTER
    bins and dt by up to DT_JITTER frames (duplicates dropped), and the landmark each key
    came from."""
    f1, f2, dt = _fields(h)
    fj = sorted({-F_JITTER, 0, F_JITTER})
    tj = sorted({-DT_JITTER, 0, DT_JITTER})
    ks = [_pack(f1 + a, f2 + b, dt + c) for a in fj for b in fj for c in tj]
    k = np.stack(ks, axis=1)
    src = np.broadcast_to(np.arange(len(h))[:, None], k.shape)
    comb = np.unique(src.ravel() << 23 | k.ravel())
    return comb & ((1 << 23) - 1), comb >> 23


def _match(a: Fingerprint, b: Fingerprint) -> float:
    hx, src = _expand(a.hashes)
    bk = _key(b.hashes)
    order = np.argsort(bk, kind="stable")
    qi, ib = _pairs(hx, *_csr(bk[order]))
    return _score(a, b, src[qi], order[ib])


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """0..1: the share of landmarks of the overlapping stretch that agree on one time offset.

    Symmetric; tolerates |offset| up to MAX_OFFSET_S between the two openings.
    """
    if not len(a) or not len(b):
        return 0.0
    return max(_match(a, b), _match(b, a))


class SignatureIndex:
    """Many fingerprints behind one inverted hash index.

    Postings (hash -> fingerprint number, anchor time) are kept as sorted
    arrays; `add` appends to a small pending segment that is merged into the
    main one when it grows past 1/8 of it (or 256 entries), so adds are
    amortised O(log n) and lookups search two segments.  `best_match` votes on
    (fingerprint, offset) over the query's postings, rescores the top
    candidates with `similarity` and returns the best.
    """

    CANDIDATES = 8

    def __init__(self):
        self._ids: list[Hashable] = []
        self._fps: list[Fingerprint | None] = []
        self._slot: dict[Hashable, int] = {}
        self._main = self._empty()
        self._pend: list[int] = []
        self._pend_seg = None

    @staticmethod
    def _empty():
        z = np.zeros(0, np.int64)
        return (np.zeros(0, np.uint32), np.zeros(1, np.int64), z, z)  # keys, starts, fid, time

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, id: Hashable) -> bool:
        return id in self._slot

    def get(self, id: Hashable) -> Fingerprint | None:
        k = self._slot.get(id)
        return None if k is None else self._fps[k]

    def add(self, id: Hashable, fp: Fingerprint) -> None:
        """Add (or replace) the fingerprint stored under id."""
        if id in self._slot:
            self.remove(id)
        k = len(self._fps)
        self._ids.append(id)
        self._fps.append(fp)
        self._slot[id] = k
        self._pend.append(k)
        self._pend_seg = None
        if len(self._pend) > max(256, len(self._main[2]) // (8 * 350)):
            self._merge()

    def remove(self, id: Hashable) -> None:
        """Forget id (a false positive); its postings are skipped and dropped at the next merge."""
        k = self._slot.pop(id)
        self._fps[k] = None
        if k in self._pend:
            self._pend.remove(k)
            self._pend_seg = None

    def _segment(self, slots: list[int]):
        fps = [(k, self._fps[k]) for k in slots if self._fps[k] is not None and len(self._fps[k])]
        if not fps:
            return self._empty()
        h = _key(np.concatenate([fp.hashes for _, fp in fps]))
        t = np.concatenate([fp.times for _, fp in fps]).astype(np.int64)
        fid = np.repeat([k for k, _ in fps], [len(fp) for _, fp in fps]).astype(np.int64)
        order = np.argsort(h, kind="stable")
        h, t, fid = h[order], t[order], fid[order]
        keys, starts = _csr(h)
        return keys, starts, fid, t

    def _merge(self) -> None:
        live = [k for k in range(len(self._fps)) if self._fps[k] is not None]
        self._main = self._segment(live)
        self._pend = []
        self._pend_seg = None

    def best_match(self, fp: Fingerprint, min_score: float = MATCH_THRESHOLD) -> tuple[Hashable, float] | None:
        """(id, similarity) of the stored fingerprint most like fp, or None if none reaches min_score.

        Pass min_score=0 to get the best candidate whatever its score.
        """
        if not len(fp) or not self._slot:
            return None
        if self._pend_seg is None:
            self._pend_seg = self._segment(self._pend)
        max_off = int(round(MAX_OFFSET_S / FRAME_S))
        tol = OFFSET_TOL
        width = 2 * (max_off + tol) + 1
        qk, src = _expand(fp.hashes)
        qt = fp.times[src].astype(np.int64)
        keys_all = []
        for keys, starts, fid, tim in (self._main, self._pend_seg):
            if not len(keys):
                continue
            qi, post = _pairs(qk, keys, starts)
            if not len(qi):
                continue
            off = tim[post] - qt[qi]
            ok = np.abs(off) <= max_off
            keys_all.append(fid[post[ok]] * width + (off[ok] + max_off + tol))
        if not keys_all:
            return None
        kk = np.concatenate(keys_all)
        kk = (kk[None, :] + np.arange(-tol, tol + 1)[:, None]).ravel()  # offset jitter
        u, c = np.unique(kk, return_counts=True)
        fids = u // width
        order = np.lexsort((-c, fids))
        fids_s, c_s = fids[order], c[order]
        firsts = np.flatnonzero(np.r_[True, fids_s[1:] != fids_s[:-1]])
        cand_f, cand_c = fids_s[firsts], c_s[firsts]
        top = cand_f[np.argsort(-cand_c, kind="stable")[: self.CANDIDATES]]
        best: tuple[Hashable, float] | None = None
        for k in top:
            ref = self._fps[int(k)]
            if ref is None:
                continue
            sc = similarity(fp, ref)
            if best is None or sc > best[1]:
                best = (self._ids[int(k)], sc)
        if best is None or best[1] < min_score:
            return None
        return best
