"""Announcement signatures: recognise a recorded announcement heard before.

Robocalls play one recording to everyone.  We fingerprint the opening seconds
of the caller's audio on calls marked spam; a later call whose opening matches
one of those fingerprints is playing the same recording, and can be flagged or
rejected.  People never match each other, and neither do two recordings of the
same words: the fingerprint records where the spectral peaks of *this*
recording fall in time and frequency, not what is said.

    fp = fingerprint(pcm, rate)                 # Fingerprint; fp.to_bytes() ~3 KB
    similarity(fp, Fingerprint.from_bytes(b))   # 0..1, >= MATCH_THRESHOLD: same recording
    idx = SignatureIndex(); idx.add(call_id, fp)
    idx.best_match(fp)                          # (call_id, score) or None

Method: landmark (peak-pair) hashing, after Wang's Shazam paper.

* Audio goes to 8 kHz whatever its rate.  Leading silence is cut: analysis
  starts where the level first stays 10 dB over the noise floor for 30 ms.
  `seconds` of audio from there are analysed with 64 ms Hann frames, a 4 ms
  hop, and only the 300-3400 Hz band.
* Peaks are local maxima of the spectrogram over +-62 Hz and +-32 ms.  A
  peak is kept if it is among the 16 strongest within 0.5 s either side of it.
  This is a sliding rank, so the set of peaks does not depend on where the
  analysis started.
* A peak whose bin is as loud 160 ms before *and* after is a steady tone
  (ringback, dial tone, a carrier).  It is dropped, so two unrelated calls that
  both open with ringback share nothing.
* Each peak (the anchor) is paired with its 6 nearest later peaks, 4-640 ms on
  and 31-984 Hz away.  (f1, f2 - f1, dt) packs into a 23-bit hash, kept with the
  anchor's time.  A 6 s opening gives ~520 landmarks; serialised at 6 bytes
  each, that is ~3.1 KB.  Computing one takes ~15 ms of CPU.

Why landmarks rather than Haitsma-Kalker's 32-bit band-energy-difference
sub-fingerprints:

* Time offset.  A landmark holds only time *differences*, so it is the same
  wherever the announcement starts.  Matching is one histogram vote on
  t_b - t_a over the shared hashes, at any offset.  HK needs an alignment search
  (or an exact 32-bit sub-fingerprint hit, which codec noise rarely leaves
  intact) on a frame grid that a sub-frame shift already upsets.
* What comes before the announcement.  Ringback, "hello?" or noise add landmarks
  that match nothing: they cost coverage, not correctness.  HK's bit error rate
  over a block counts them as errors.
* Codec, level, loss.  Local maxima do not depend on scale.  The strongest
  harmonics stay where they were through G.711, GSM 06.10 and AMR, and stay on
  top in white noise at 15-20 dB SNR.  Packet loss costs the peaks of the lost
  20 ms and nothing else.
* Specificity.  Harmonic peaks at 15.6 Hz resolution and 4 ms timing carry this
  speaker's pitch contour and this take's timing.  Another voice, or another
  take of the same text, lands in other bins.
* Lookup.  The hashes are keys for an inverted index (`SignatureIndex`).

Tolerances were tuned on degraded espeak-ng announcements; the figures are in
docs/detectors.md and tests/unit/detectors/test_signature.py.

* A 4 ms hop.  With a 16 ms hop, an 8 ms shift alone cut the score to 0.35,
  and a noisier floor shifts the trimmed start by that much.  With 4 ms, a
  1-2.5 ms shift scores 0.89-0.92.
* Two landmarks match when f1 and f2 are equal and their dt are within +-4 ms.
  The query's keys are expanded to dt-1, dt and dt+1, so the relation is
  symmetric and so is `similarity`.
* Offsets must agree within +-4 ms.  A +-8 ms tolerance, or a +-1 bin
  frequency tolerance, raised impostor scores more than genuine ones.
* Ranking peaks by a sliding window rather than in fixed 1 s blocks took a
  1.5 s ringback lead from 0.57 to 0.9: fixed blocks fall differently once
  the start moves.

similarity(a, b) counts the landmarks that agree on one offset (|offset| <=
MAX_OFFSET_S), each counted once.  It divides that by the landmarks either side
has in the stretch the two openings share (the smaller count, but at least
MIN_LANDMARKS), so a 1.5 s late start costs only the audio that was cut off.

Known limits:

* A time-stretched copy, or one played at another speed, is another recording.
  Clock drift between carriers (<100 ppm, 0.6 ms over 6 s) is harmless.
* AMR-NB at 4.75 kbit/s, its lowest mode, scores 0.16-0.31 over 8 announcements;
  one of the 8 fell under the threshold.  The 12.2 kbit/s mode, usual for
  voice, scores 0.66-0.79.
* A legitimate business's IVR prompt matches itself like any recording, so only
  calls marked spam should be added.

The constants define the fingerprint.  If they change, bump _VERSION:
from_bytes then refuses old fingerprints rather than comparing them wrongly,
and they have to be recomputed from the stored audio.
"""
from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Hashable

import numpy as np

RATE = 8000
N_FFT = 512                 # 64 ms, 15.6 Hz bins
HOP = 32                    # 4 ms
FRAME_S = HOP / RATE
F_LO, F_HI = 300.0, 3400.0
K_LO = int(np.ceil(F_LO * N_FFT / RATE))
K_HI = int(np.floor(F_HI * N_FFT / RATE))

LEAD_MAX_S = 10.0           # the opening may start this late in the samples given
ONSET_FRAME_S = 0.010
ONSET_SNR_DB = 10.0         # over the 10th-percentile frame level...
ONSET_RUN = 3               # ...for 3 frames (30 ms)
ONSET_MIN_POWER = 300.0     # ~ -63 dBFS: quieter is silence whatever the floor

PEAK_DF = 4                 # local maximum over +-4 bins (+-62 Hz)
PEAK_DT = 8                 # and +-8 frames (+-32 ms)
PEAK_RANGE_DB = 50.0        # ignore anything 50 dB under the loudest bin
PEAKS_PER_S = 16            # keep the 16 strongest within +-0.5 s
PEAK_STEADY_DT = 40         # the bin (+-1) this loud 160 ms before and after...
PEAK_STEADY_DB = 4.0        # ...within 4 dB: a steady tone, dropped
FAN_OUT = 6
DT_MAX = 160                # pair targets up to 640 ms later
DF_MIN, DF_MAX = 2, 63      # and 2..63 bins (31-984 Hz) away

DT_JITTER = 1               # landmark dt may differ by +-1 frame (4 ms)
OFFSET_TOL = 1              # landmarks within +-1 frame (4 ms) of the best offset agree
MAX_OFFSET_S = 2.5          # the two openings may be this far out of step
MIN_LANDMARKS = 100         # score denominator floor (~1.2 s of speech)

# Genuine and impostor scores measured in the tests:
# * worst genuine 0.36-0.46: GSM 06.10 with gain, 20 dB SNR noise, 2 % loss and a
#   lead, all at once.  GSM alone is 0.47-0.53, AMR-NB 12.2 is 0.65, G.711 is
#   0.95, and noise or loss alone is over 0.8.
# * best impostor 0.05: the same script in another espeak voice.  Other
#   announcements and unrelated speech score under 0.03.
# The threshold leaves ~2x headroom below the one and ~4x above the other.
MATCH_THRESHOLD = 0.20

_MAGIC = b"RPSG"
_VERSION = 1
_HEADER = struct.Struct("<4sBBHII")  # magic, version, flags (0), n_frames, start_ms, count


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """The landmarks of one opening.

    hashes are uint32, sorted; times are the anchor frame times (uint16, 4 ms
    frames).  n_frames is the length analysed, in frames; start_s is where that
    analysis began in the input, after the leading silence.
    """

    hashes: np.ndarray
    times: np.ndarray
    n_frames: int
    start_s: float = 0.0

    def __len__(self) -> int:
        return len(self.hashes)

    @property
    def duration_s(self) -> float:
        return self.n_frames * FRAME_S

    def to_bytes(self) -> bytes:
        head = _HEADER.pack(_MAGIC, _VERSION, 0, self.n_frames, int(round(self.start_s * 1000)), len(self.hashes))
        return head + self.hashes.astype("<u4").tobytes() + self.times.astype("<u2").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Fingerprint":
        if len(data) < _HEADER.size:
            raise ValueError("announcement signature too short")
        magic, version, _, n_frames, start_ms, count = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise ValueError("not a ringpool announcement signature")
        if version != _VERSION:
            raise ValueError(f"announcement signature version {version}, this code makes {_VERSION}: "
                             "fingerprint the stored audio again")
        if len(data) != _HEADER.size + 6 * count:
            raise ValueError(f"announcement signature of {len(data)} bytes does not hold its {count} landmarks")
        o = _HEADER.size
        h = np.frombuffer(data, "<u4", count, o).astype(np.uint32)
        t = np.frombuffer(data, "<u2", count, o + 4 * count).astype(np.uint16)
        return _make(h, t, n_frames, start_ms / 1000)


def _make(h: np.ndarray, t: np.ndarray, n_frames: int, start_s: float) -> Fingerprint:
    order = np.lexsort((t, h))
    return Fingerprint(np.ascontiguousarray(h[order], np.uint32), np.ascontiguousarray(t[order], np.uint16),
                       int(n_frames), float(start_s))


_EMPTY = _make(np.zeros(0, np.uint32), np.zeros(0, np.uint16), 0, 0.0)


# ---------------------------------------------------------------------------------------------- audio

def _as_float(samples) -> np.ndarray:
    if isinstance(samples, (bytes, bytearray, memoryview)):
        samples = np.frombuffer(samples, np.int16)
    a = np.asarray(samples)
    x = a.astype(np.float64).ravel()
    if a.dtype.kind == "f" and len(x) and 0 < np.max(np.abs(x)) <= 1.0:
        x = x * 32768.0  # floats in [-1, 1]
    return x


def _onset(x: np.ndarray, rate: int) -> int | None:
    """Sample index where the audio first stays ONSET_SNR_DB over the noise floor for 30 ms."""
    n = max(1, int(round(ONSET_FRAME_S * rate)))
    m = len(x) // n
    if m < ONSET_RUN:
        return None
    db = 10 * np.log10(np.mean(x[: m * n].reshape(m, n) ** 2, axis=1) + 1.0)
    lo, hi = np.percentile(db, [10, 99])
    thr = max(lo + ONSET_SNR_DB, hi - 45.0, 10 * np.log10(ONSET_MIN_POWER))
    run = np.convolve(db > thr, np.ones(ONSET_RUN, int), "valid") == ONSET_RUN
    idx = np.flatnonzero(run)
    return None if not len(idx) else max(0, int(idx[0]) - 2) * n


def _smooth(n: int) -> bool:
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
    return n == 1


def _resample(x: np.ndarray, rate: int, to: int) -> np.ndarray:
    """Band-limited resampling by FFT (a few seconds of audio: cheap).  The input is
    zero-padded to a length with small prime factors that maps to a whole number of
    output samples (an FFT of a prime length is 15x slower)."""
    if rate == to or not len(x):
        return x
    g = np.gcd(rate, to)
    step_in, step_out = rate // g, to // g
    m = -(-len(x) // step_in)
    while not _smooth(m):
        m += 1
    spec = np.fft.rfft(x, m * step_in)
    n_out = m * step_out
    out = np.zeros(n_out // 2 + 1, complex)
    keep = min(len(spec), len(out))
    out[:keep] = spec[:keep]
    y = np.fft.irfft(out, n_out) * (n_out / (m * step_in))
    return y[: int(round(len(x) * to / rate))]


_WINDOW = np.hanning(N_FFT).astype(np.float32)


def _spectrogram(x: np.ndarray) -> np.ndarray:
    """Power (float32), shape (frames, K_HI - K_LO + 1).  Peak picking only compares
    values and ratios, so no logarithm is needed."""
    if len(x) < N_FFT:
        x = np.concatenate([x, np.zeros(N_FFT - len(x))])
    fr = np.lib.stride_tricks.sliding_window_view(x.astype(np.float32), N_FFT)[::HOP]
    c = np.fft.rfft(fr * _WINDOW, axis=1)[:, K_LO:K_HI + 1]
    return c.real * c.real + c.imag * c.imag


def _maxfilt(s: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Running maximum over +-r along axis (edges padded with -inf), in O(log r) passes."""
    w = 2 * r + 1
    s = np.moveaxis(s, axis, 0)
    n = s.shape[0]
    pad = np.full((r,) + s.shape[1:], -np.inf, s.dtype)
    m, k = np.concatenate([pad, s, pad]), 1  # m[i] = max(p[i:i+k])
    while 2 * k <= w:
        m = np.maximum(m[:-k], m[k:])
        k *= 2
    return np.moveaxis(np.maximum(m[:n], m[w - k:w - k + n]), 0, axis)


def _peaks(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frame, bin) of the kept spectral peaks of power spectrogram s, sorted by frame."""
    nt = s.shape[0]
    local = _maxfilt(_maxfilt(s, PEAK_DF, 1), PEAK_DT, 0)
    cand = (s >= local) & (s > s.max() * np.float32(10 ** (-PEAK_RANGE_DB / 10)))
    # steady tones: the bin (+-1) as loud PEAK_STEADY_DT frames before and after (one side at the edges)
    d = PEAK_STEADY_DT
    near = _maxfilt(s, 1, 1)
    pad = np.full((d, s.shape[1]), np.inf, s.dtype)
    near = np.concatenate([pad, near, pad])
    floor = s * np.float32(10 ** (-PEAK_STEADY_DB / 10))
    cand &= ~((near[:nt] > floor) & (near[2 * d:] > floor))
    t, f = np.nonzero(cand)
    if not len(t):
        return t, f
    # a sliding rank: the PEAKS_PER_S strongest of the second centred on each peak
    v = s[t, f]
    half = int(round(0.5 / FRAME_S))
    lo = np.searchsorted(t, t - half, "left")
    hi = np.searchsorted(t, t + half, "right")
    keep = np.zeros(len(t), bool)
    for c0 in range(0, len(t), 256):  # chunks bound the pairwise matrix
        c1 = min(len(t), c0 + 256)
        idx = np.arange(lo[c0], hi[c1 - 1])
        inwin = (idx[None, :] >= lo[c0:c1, None]) & (idx[None, :] < hi[c0:c1, None])
        louder = v[None, idx] > v[c0:c1, None]
        keep[c0:c1] = np.count_nonzero(inwin & louder, axis=1) < PEAKS_PER_S
    return t[keep], f[keep]


def _landmarks(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of each peak with its FAN_OUT nearest later ones: (hash, anchor time)."""
    n = len(t)
    if n < 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint16)
    look = min(n - 1, 8 * FAN_OUT)
    j = np.arange(n)[:, None] + np.arange(1, look + 1)[None, :]
    valid = j < n
    j = np.minimum(j, n - 1)
    dt = t[j] - t[:, None]
    df = f[j] - f[:, None]
    valid &= (dt >= 1) & (dt <= DT_MAX) & (np.abs(df) >= DF_MIN) & (np.abs(df) <= DF_MAX)
    valid &= np.cumsum(valid, axis=1) <= FAN_OUT
    a, c = np.nonzero(valid)
    h = (f[a].astype(np.uint32) << 15) | ((df[a, c] + 64).astype(np.uint32) << 8) | dt[a, c].astype(np.uint32)
    return h, t[a].astype(np.uint16)


def fingerprint(samples, rate: int, seconds: float = 6.0) -> Fingerprint:
    """Fingerprint `seconds` of audio from where the leading silence ends.

    samples: int16 samples, floats in int16 units (or in [-1, 1]), or raw
    native-endian int16 bytes, at any rate.  Pass the opening of the call: the
    sound may start up to LEAD_MAX_S in.  Silence gives an empty Fingerprint,
    which matches nothing.  ~15 ms of CPU for 6 s.
    """
    if not 0 < seconds <= 60:
        raise ValueError("seconds must be in (0, 60]")
    x = _as_float(samples)[: int((LEAD_MAX_S + seconds) * rate)]
    start = _onset(x, rate)
    if start is None:
        return _EMPTY
    seg = x[start: start + int(round(seconds * rate))]
    seg = _resample(seg - seg.mean(), rate, RATE)
    h, t = _landmarks(*_peaks(_spectrogram(seg)))
    return _make(h, t, max(1, (len(seg) - N_FFT) // HOP + 1), start / rate)


# ------------------------------------------------------------------------------------------- matching

_MAX_OFF = int(round(MAX_OFFSET_S / FRAME_S))


def _expand(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The query side's keys: each hash with dt - DT_JITTER .. dt + DT_JITTER, and the landmark
    each came from.  Stored hashes are used as they are, so two landmarks match when f1 and f2
    are equal and their dt differ by at most DT_JITTER (a symmetric relation)."""
    h = h.astype(np.int64)
    dt = h & 0xFF
    k = np.stack([(h - dt) | np.clip(dt + d, 0, 255) for d in range(-DT_JITTER, DT_JITTER + 1)], axis=1)
    src = np.broadcast_to(np.arange(len(h))[:, None], k.shape)
    return k.ravel(), src.ravel()


def _pairs(q: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (index into q, index into keys) with equal values; keys sorted."""
    q = q.astype(keys.dtype)  # else searchsorted casts all of keys, every call
    lo = np.searchsorted(keys, q, "left")
    cnt = np.searchsorted(keys, q, "right") - lo
    qi = np.flatnonzero(cnt)
    cnt = cnt[qi]
    total = int(cnt.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    rep = np.repeat(np.arange(len(qi)), cnt)
    post = lo[qi][rep] + (np.arange(total) - (np.cumsum(cnt) - cnt)[rep])
    return qi[rep], post


def _score(a: Fingerprint, b: Fingerprint, ia: np.ndarray, ib: np.ndarray) -> float:
    """Score of a against b, given the landmark pairs with equal keys."""
    off = b.times[ib].astype(np.int64) - a.times[ia].astype(np.int64)
    ok = np.abs(off) <= _MAX_OFF
    if not ok.any():
        return 0.0
    ia, ib, off = ia[ok], ib[ok], off[ok]
    hist = np.bincount(off + _MAX_OFF, minlength=2 * _MAX_OFF + 1)
    d = int(np.argmax(np.convolve(hist, np.ones(2 * OFFSET_TOL + 1), "same"))) - _MAX_OFF
    sel = np.abs(off - d) <= OFFSET_TOL
    matches = min(len(np.unique(ia[sel])), len(np.unique(ib[sel])))
    ta, tb = a.times.astype(np.int64) + d, b.times.astype(np.int64) - d
    na = np.count_nonzero((ta >= 0) & (ta < b.n_frames))
    nb = np.count_nonzero((tb >= 0) & (tb < a.n_frames))
    return min(1.0, matches / max(min(na, nb), MIN_LANDMARKS))


def _match(a: Fingerprint, b: Fingerprint) -> float:
    q, src = _expand(a.hashes)
    qi, ib = _pairs(q, b.hashes)
    return _score(a, b, src[qi], ib) if len(qi) else 0.0


def similarity(a: Fingerprint, b: Fingerprint) -> float:
    """0..1: the share of landmarks in the stretch two openings share that agree on one time offset.

    Symmetric.  The openings may be up to MAX_OFFSET_S out of step.  The same recording scores
    >= MATCH_THRESHOLD through codecs, gain, noise and packet loss; different recordings score ~0.
    """
    if not len(a) or not len(b):
        return 0.0
    return _match(a, b)


def _merge_segments(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Two posting segments, each sorted by key, as one (a stable sort of two runs is linear)."""
    both = {k: np.concatenate([a[k], b[k]]) for k in a}
    order = np.argsort(both["key"], kind="stable")
    return {k: v[order] for k, v in both.items()}


class SignatureIndex:
    """Many fingerprints behind an inverted index: hash -> (fingerprint, landmark, time).

    The postings are parallel arrays sorted by hash (23-bit).  A posting is 12
    bytes and a fingerprint has ~520, so 10,000 announcements take ~62 MB, plus
    ~31 MB for the Fingerprint objects kept for scoring.  `add` goes to a small
    pending segment.  That segment is merged into the main one once it holds more
    than max(64, 1/4 of main) fingerprints; the merge is linear (two sorted
    runs), so adding n one at a time costs O(n log n) in all.
    `SignatureIndex(items)` loads many at once: 10,000 in ~2 s.

    `best_match` collects every posting the query's keys hit: ~35,000-40,000
    with 10,000 entries.  It keeps the CANDIDATES_RAW fingerprints with the most
    hits and votes on (fingerprint, offset) among them.  The best-voted few are
    scored exactly from the same pairs, so the score equals
    `similarity(query, stored)`.  Measured with 10,000 real speech fingerprints
    stored: ~3 ms of CPU a lookup (docs/detectors.md).

    It is thread-safe.  One lock covers add, remove and best_match, so lookups can
    run in an executor while the event loop adds.  A lookup holds the lock for a
    few ms.
    """

    CANDIDATES_RAW = 32   # fingerprints with the most raw hits that get an offset vote
    CANDIDATES = 3        # best-voted fingerprints that get an exact score

    def __init__(self, items=()):
        self._lock = threading.RLock()
        self._ids: list[Hashable] = []
        self._fps: list[Fingerprint | None] = []
        self._slot: dict[Hashable, int] = {}
        self._main = self._segment([])
        self._main_n = 0
        self._pending: list[int] = []
        self._pend_seg = None
        self._dead = 0
        self._bulk = True
        with self._lock:
            for id, fp in items:
                self.add(id, fp)
            self._bulk = False
            if self._pending:
                self._merge()

    def __len__(self) -> int:
        return len(self._slot)

    def __contains__(self, id: Hashable) -> bool:
        return id in self._slot

    def get(self, id: Hashable) -> Fingerprint | None:
        with self._lock:
            k = self._slot.get(id)
            return None if k is None else self._fps[k]

    def add(self, id: Hashable, fp: Fingerprint) -> None:
        """Store fp under id (replacing what id held)."""
        with self._lock:
            self._add(id, fp)

    def _add(self, id: Hashable, fp: Fingerprint) -> None:
        if id in self._slot:
            self._remove(id)
        k = len(self._fps)
        self._ids.append(id)
        self._fps.append(fp)
        self._slot[id] = k
        self._pending.append(k)
        if not self._bulk and len(self._pending) > max(64, self._main_n // 4):
            self._merge()
        elif self._pend_seg is not None:  # keep it current: one linear merge, not a rebuild
            self._pend_seg = _merge_segments(self._pend_seg, self._segment([k]))

    def remove(self, id: Hashable) -> None:
        """Forget id (e.g. a false positive).  Its postings are skipped until the next merge drops them.
        KeyError if id is not stored."""
        with self._lock:
            self._remove(id)

    def _remove(self, id: Hashable) -> None:
        k = self._slot.pop(id)
        self._fps[k] = None
        self._dead += 1
        if k in self._pending:
            self._pending.remove(k)
            self._pend_seg = None
        if not self._bulk and self._dead > max(64, self._main_n // 4):
            self._merge()

    def _segment(self, slots: list[int]) -> dict[str, np.ndarray]:
        fps = [(k, self._fps[k]) for k in slots if self._fps[k] is not None and len(self._fps[k])]
        if not fps:
            return {"key": np.zeros(0, np.uint32), "slot": np.zeros(0, np.int32),
                    "lm": np.zeros(0, np.int16), "time": np.zeros(0, np.uint16)}
        lens = [len(fp) for _, fp in fps]
        seg = {"key": np.concatenate([fp.hashes for _, fp in fps]),
               "slot": np.repeat(np.array([k for k, _ in fps], np.int32), lens),
               "lm": np.concatenate([np.arange(n, dtype=np.int16) for n in lens]),
               "time": np.concatenate([fp.times for _, fp in fps])}
        order = np.argsort(seg["key"], kind="stable")
        return {k: v[order] for k, v in seg.items()}

    def _merge(self) -> None:
        """Fold the pending segment into main, drop removed entries, renumber the slots."""
        pend = self._segment(self._pending)
        alive = np.array([fp is not None for fp in self._fps], bool)
        main = self._main
        if not alive[main["slot"]].all():
            main = {k: v[alive[main["slot"]]] for k, v in main.items()}
        both = _merge_segments(main, pend)
        renum = np.cumsum(alive) - 1
        both["slot"] = renum[both["slot"]].astype(np.int32)
        live = np.flatnonzero(alive)
        self._ids = [self._ids[k] for k in live]
        self._fps = [self._fps[k] for k in live]
        self._slot = {id: k for k, id in enumerate(self._ids)}
        self._main, self._main_n = both, len(self._fps)
        self._pending, self._pend_seg, self._dead = [], None, 0

    def best_match(self, fp: Fingerprint, min_score: float = MATCH_THRESHOLD) -> tuple[Hashable, float] | None:
        """(id, similarity(fp, stored)) of the stored fingerprint most like fp, or None if none
        scores >= min_score.  With min_score=0: the best candidate sharing any landmark."""
        with self._lock:
            return self._best_match(fp, min_score)

    def _best_match(self, fp: Fingerprint, min_score: float) -> tuple[Hashable, float] | None:
        if not len(fp) or not self._slot:
            return None
        if self._pend_seg is None:
            self._pend_seg = self._segment(self._pending)
        q, src = _expand(fp.hashes)
        parts = []  # (query landmark, slot, stored landmark, stored time)
        for seg in (self._main, self._pend_seg):
            qi, post = _pairs(q, seg["key"])
            if len(qi):
                parts.append((src[qi], seg["slot"][post], seg["lm"][post], seg["time"][post]))
        if not parts:
            return None
        a, sl, b, tb = (np.concatenate(c) for c in zip(*parts))
        # stage 1: the fingerprints with the most hits, whatever the offset
        hits = np.bincount(sl, minlength=len(self._fps))
        n_raw = min(self.CANDIDATES_RAW, int(np.count_nonzero(hits)))
        raw = np.argpartition(-hits, n_raw - 1)[:n_raw]
        pick = np.zeros(len(self._fps), bool)
        pick[raw] = True
        m = pick[sl]
        a, sl, b = a[m], sl[m], b[m]
        off = tb[m].astype(np.int64) - fp.times[a].astype(np.int64)
        ok = np.abs(off) <= _MAX_OFF
        a, sl, b, off = a[ok], sl[ok], b[ok], off[ok]
        if not len(a):
            return None
        # stage 2: votes per (fingerprint, offset +- OFFSET_TOL); each one's best offset
        tol = OFFSET_TOL
        width = 2 * (_MAX_OFF + tol) + 1
        cell = sl.astype(np.int64) * width + (off + _MAX_OFF + tol)
        cells, count = np.unique((cell[None, :] + np.arange(-tol, tol + 1)[:, None]).ravel(), return_counts=True)
        cs = cells // width
        order = np.lexsort((-count, cs))
        cs, count = cs[order], count[order]
        first = np.flatnonzero(np.r_[True, cs[1:] != cs[:-1]])
        ranked = cs[first][np.argsort(-count[first], kind="stable")]
        # stage 3: exact scores for the best-voted few
        best: tuple[Hashable, float] | None = None
        tried = 0
        for k in ranked:
            ref = self._fps[int(k)]
            if ref is None:  # removed; its postings go at the next merge
                continue
            mk = sl == k
            sc = _score(fp, ref, a[mk], b[mk])
            if best is None or sc > best[1]:
                best = (self._ids[int(k)], sc)
            tried += 1
            if tried == self.CANDIDATES:
                break
        if best is None or best[1] < min_score:
            return None
        return best
